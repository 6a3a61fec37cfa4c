"""5. tenancy: what authentication and the Redis limiter cost per call.

Two gateways on one emulator, running the overhead scenario's call (a 256x256
dall-e-2 PNG, upstream answering at once): ``gateway``, with neither authentication
nor limits, and ``tenancy``, with a clients file, a bearer token on every call and
the Redis limiter on a local redis-server. Its one client has requests and images
per minute, max_concurrent and a daily and monthly budget, and the gateway a
gateway-wide images-per-minute ceiling, all far above what the run asks, so every
call is admitted and every admission runs the Redis scripts (ceiling, admit, settle:
three round trips). Phases of the two gateways alternate, twice per concurrency
level, after a warm-up each.

Reported as ratios tenancy / gateway: the gateway process's CPU time per call (from
/proc/PID/stat, all its threads) and p50 latency at concurrency 1.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from imagegate_server.bench.clients import GrpcPool
from imagegate_server.bench.loadgen import PYTHON_GRPC
from imagegate_server.bench.measure import Call, LoadResult, closed_loop
from imagegate_server.bench.model import Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import StackConfig, running_emulator, running_gateways
from imagegate_server.bench.redis_server import redis_server_binary, running_redis
from imagegate_server.bench.scenarios.overhead import REQUEST
from imagegate_server.bench.usage import cpu_seconds

NAME = "tenancy"
CLIENT = "bench"
TARGET = 1.2
VERSUS = ", auth + Redis limiter / none"
# Far above anything the run asks (~8,500 calls in all, at most ~1,000 a second).
LIMITS = {
    "--requests-per-minute": "1000000",
    "--images-per-minute": "1000000",
    "--max-concurrent": "10000",
    "--daily-budget-usd": "1000000",
    "--monthly-budget-usd": "10000000",
}
GATEWAY_IMAGES_PER_MINUTE = "1000000"


def preflight() -> None:
    """Raises :class:`BenchUnavailable` when redis-server is missing."""
    redis_server_binary()


async def add_client(clients_file: Path) -> str:
    """``imagegate clients add`` (the operator's way), printing the token on stdout."""
    argv = ["-m", "imagegate_server.cli", "clients", "add", CLIENT, "--file", str(clients_file)]
    for option, value in LIMITS.items():
        argv += [option, value]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"imagegate clients add failed: {err.decode(errors='replace')}")
    return out.decode().strip()


def gateway_call(pool: GrpcPool, metadata: tuple[tuple[str, str], ...]) -> Call:
    async def call() -> None:
        reply = await pool.stub().CreateImage(REQUEST, metadata=metadata, timeout=30)
        if not reply.result.images or not reply.result.images[0].data:
            raise ValueError("no image in the reply")

    return call


@dataclass
class Phases:
    """One path at one concurrency, summed over its rounds."""

    load: LoadResult = field(default_factory=LoadResult)
    gateway_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0

    def add(self, load: LoadResult, gateway_cpu_s: float, redis_cpu_s: float) -> None:
        self.load.latencies_s += load.latencies_s
        self.load.errors.update(load.errors)
        self.load.elapsed_s += load.elapsed_s
        self.gateway_cpu_s += gateway_cpu_s
        self.redis_cpu_s += redis_cpu_s

    @property
    def calls(self) -> int:
        return self.load.ok + self.load.error_count

    def per_call_ms(self, cpu_s: float) -> float:
        return 1000 * cpu_s / self.calls if self.calls else math.inf


@dataclass(frozen=True)
class Target:
    """One of the two gateways: how to call it, and whose CPU a call costs."""

    path: str
    call: Call
    gateway_pid: int
    redis_pid: int | None = None

    async def measure(
        self, concurrency: int, calls: int, time_limit_s: float, into: Phases
    ) -> None:
        gateway_before = cpu_seconds(self.gateway_pid)
        redis_before = cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        load = await closed_loop(self.call, concurrency, calls, time_limit_s)
        gateway_cpu = cpu_seconds(self.gateway_pid) - gateway_before
        redis_cpu = cpu_seconds(self.redis_pid) - redis_before if self.redis_pid else 0.0
        into.add(load, gateway_cpu, redis_cpu)


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    levels = [(1, 10 if ctx.tiny else 1000), (64, 32 if ctx.tiny else 3200)]
    rounds = 1 if ctx.tiny else 2
    time_limit = 10.0 if ctx.tiny else 60.0
    workdir = ctx.workdir / NAME
    measured: dict[tuple[str, int], Phases] = {}
    clients_file = workdir / "clients.toml"
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    adding = asyncio.create_task(add_client(clients_file))  # meanwhile, start the servers
    async with (
        running_redis(workdir / "redis") as redis,
        running_emulator(StackConfig(), workdir) as (url, _emulator_pid),
    ):
        token = await adding
        tenancy_env = {
            "IMAGEGATE_CLIENTS_FILE": str(clients_file),
            "IMAGEGATE_REDIS_URL": redis.url,
            "IMAGEGATE_GATEWAY_IMAGES_PER_MINUTE": GATEWAY_IMAGES_PER_MINUTE,
        }
        envs = {"gateway": {}, "tenancy": tenancy_env}
        async with running_gateways(url, envs, workdir) as gateways:
            (plain_target, plain_pid), (tenant_target, tenant_pid) = gateways.values()
            plain_pool, tenant_pool = GrpcPool(plain_target), GrpcPool(tenant_target)
            try:
                await plain_pool.ready()
                await tenant_pool.ready()
                bearer = (("authorization", f"Bearer {token}"),)
                targets = (
                    Target("gateway", gateway_call(plain_pool, ()), plain_pid),
                    Target("tenancy", gateway_call(tenant_pool, bearer), tenant_pid, redis.pid),
                )
                for target in targets:
                    await closed_loop(target.call, 8, 8 if ctx.tiny else 64, time_limit)
                for concurrency, calls in levels:
                    for _ in range(rounds):
                        for target in targets:
                            phases = measured.setdefault((target.path, concurrency), Phases())
                            await target.measure(concurrency, calls, time_limit, phases)
            finally:
                await plain_pool.close()
                await tenant_pool.close()

    for (path_name, concurrency), phases in measured.items():
        row = Row.of(NAME, "256x256", path_name, concurrency, phases.load)
        row.gateway_cpu_ms_per_call = phases.per_call_ms(phases.gateway_cpu_s)
        row.generator = PYTHON_GRPC
        if path_name == "tenancy":
            row.extra["redis_cpu_ms_per_call"] = phases.per_call_ms(phases.redis_cpu_s)
        result.rows.append(row)
    for concurrency, _calls in levels:
        plain, tenant = measured["gateway", concurrency], measured["tenancy", concurrency]
        cpu = _ratio(
            tenant.per_call_ms(tenant.gateway_cpu_s), plain.per_call_ms(plain.gateway_cpu_s)
        )
        result.checks.append(
            _check(f"gateway CPU per call{VERSUS}, at concurrency {concurrency}", cpu)
        )
    plain_1, tenant_1 = measured["gateway", 1].load, measured["tenancy", 1].load
    # No successful call is no latency at all: judge it as missed, not as 0 ms.
    p50 = _ratio(tenant_1.percentile_s(50), plain_1.percentile_s(50)) if tenant_1.ok else math.inf
    result.checks.append(_check(f"p50 latency{VERSUS}, at concurrency 1", p50))
    result.notes.append(
        f"gateway = no authentication, no limits; tenancy = clients file + bearer token, Redis "
        f"limiter (own redis-server on loopback), one client with requests and images per "
        f"minute, max_concurrent, daily and monthly budget, plus a gateway-wide images-per-"
        f"minute ceiling; {rounds} alternating rounds per level; CPU from /proc/PID/stat of "
        f"the gateway process (redis-server's own CPU shown apart); driven by the Python "
        f"gRPC client whatever is installed: both gateways pay it alike, and the targets "
        f"are ratios between them"
    )
    return result


def _ratio(measured: float, baseline: float) -> float:
    return measured / max(baseline, 1e-9)


def _check(target: str, ratio: float) -> Check:
    return Check(NAME, target, ratio, TARGET, higher_is_better=False, unit="x")
