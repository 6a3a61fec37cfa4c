"""5. tenancy: what authentication and each limiter backend cost per call.

Four gateways on one emulator, running the overhead scenario's call (a 256x256
dall-e-2 PNG, upstream answering at once): ``gateway``, with neither authentication
nor limits (the memory store, which then has nothing to count), and one per limiter
backend, each with a clients file, a bearer token on every call and its store:
``memory`` (this process), ``local`` (the SQLite database in its data directory, the
default: two transactions per call on the database's thread) and ``redis`` (a local
redis-server: the ceiling, admit and settle scripts, three round trips). Their one
client has requests and images per minute, max_concurrent and a daily and monthly
budget, and the gateway a gateway-wide images-per-minute ceiling, all far above what
the run asks, so every call is admitted and every limit is checked. Phases of the
gateways alternate, twice per concurrency level, after a warm-up each.

Reported as ratios backend / gateway: the gateway process's CPU time per call (from
/proc/PID/stat, all its threads, so the database thread too) and p50 latency at
concurrency 1.
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
BACKENDS = ("memory", "local", "redis")
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
        limited = {
            "IMAGEGATE_CLIENTS_FILE": str(clients_file),
            "IMAGEGATE_GATEWAY_IMAGES_PER_MINUTE": GATEWAY_IMAGES_PER_MINUTE,
        }
        envs = {
            "gateway": {"IMAGEGATE_LIMITS_STORE": "memory"},
            "memory": {**limited, "IMAGEGATE_LIMITS_STORE": "memory"},
            "local": {**limited, "IMAGEGATE_LIMITS_STORE": "local"},
            "redis": {**limited, "IMAGEGATE_REDIS_URL": redis.url},
        }
        async with running_gateways(url, envs, workdir) as gateways:
            pools = {name: GrpcPool(target) for name, (target, _pid) in gateways.items()}
            try:
                for pool in pools.values():
                    await pool.ready()
                bearer = (("authorization", f"Bearer {token}"),)
                targets = [
                    Target(
                        name,
                        gateway_call(pools[name], () if name == "gateway" else bearer),
                        gateways[name][1],
                        redis.pid if name == "redis" else None,
                    )
                    for name in envs
                ]
                for target in targets:
                    await closed_loop(target.call, 8, 8 if ctx.tiny else 64, time_limit)
                for concurrency, calls in levels:
                    for _ in range(rounds):
                        for target in targets:
                            phases = measured.setdefault((target.path, concurrency), Phases())
                            await target.measure(concurrency, calls, time_limit, phases)
            finally:
                for pool in pools.values():
                    await pool.close()

    for (path_name, concurrency), phases in measured.items():
        row = Row.of(NAME, "256x256", path_name, concurrency, phases.load)
        row.gateway_cpu_ms_per_call = phases.per_call_ms(phases.gateway_cpu_s)
        row.generator = PYTHON_GRPC
        if path_name == "redis":
            row.extra["redis_cpu_ms_per_call"] = phases.per_call_ms(phases.redis_cpu_s)
        result.rows.append(row)
    for backend in BACKENDS:
        versus = f", auth + {backend} limiter / none"
        for concurrency, _calls in levels:
            plain, limited_run = measured["gateway", concurrency], measured[backend, concurrency]
            cpu = _ratio(
                limited_run.per_call_ms(limited_run.gateway_cpu_s),
                plain.per_call_ms(plain.gateway_cpu_s),
            )
            result.checks.append(
                _check(f"gateway CPU per call{versus}, at concurrency {concurrency}", cpu)
            )
        plain_1, limited_1 = measured["gateway", 1].load, measured[backend, 1].load
        # No successful call is no latency at all: judge it as missed, not as 0 ms.
        p50 = (
            _ratio(limited_1.percentile_s(50), plain_1.percentile_s(50))
            if limited_1.ok
            else math.inf
        )
        result.checks.append(_check(f"p50 latency{versus}, at concurrency 1", p50))
    result.notes.append(
        f"gateway = no authentication, no limits; memory, local, redis = clients file + "
        f"bearer token and that limiter backend (local: the SQLite database in the "
        f"gateway's data directory; redis: its own redis-server on loopback), one client "
        f"with requests and images per minute, max_concurrent, daily and monthly budget, "
        f"plus a gateway-wide images-per-minute ceiling; {rounds} alternating rounds per "
        f"level; CPU from /proc/PID/stat of the gateway process, all threads "
        f"(redis-server's own CPU shown apart); driven by the Python gRPC client whatever "
        f"is installed: every gateway pays it alike, and the targets are ratios between "
        f"them"
    )
    return result


def _ratio(measured: float, baseline: float) -> float:
    return measured / max(baseline, 1e-9)


def _check(target: str, ratio: float) -> Check:
    return Check(NAME, target, ratio, TARGET, higher_is_better=False, unit="x")
