"""1. overhead: unary CreateImage of a small image, upstream answering at once.

The emulator has zero latency and cached renders (a 256x256 dall-e-2 PNG, ~6 KB),
so what is left is the cost of the hop: the gateway's gRPC server, validation, the
upstream client and the result mapping. Gateway and direct phases alternate per
concurrency level, against the same emulator, after one warm-up each.

Load comes from ghz (gateway) and hey (direct) when installed, so that neither
path's figure is the Python client's own cost; each gateway phase also reads the
gateway's CPU time from /proc. The targets (issue 13): CPU per call <= 0.6 ms,
p50 added by the hop at concurrency 1 <= 0.6 ms, and at concurrency 64 at least half
the calls per second the emulator serves directly.

Two floors are measured beside them: a gRPC Health/Check on the gateway (any Python
gRPC hop), and the same call through :mod:`..stack_floor`, a bare grpc.aio server
that only POSTs through an httpx transport and decodes the answer: what the fixed
stack costs before any of the gateway's own work.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.bench.clients import GrpcPool
from imagegate_server.bench.loadgen import Generators
from imagegate_server.bench.measure import Call, LoadResult
from imagegate_server.bench.model import Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import StackConfig, running_stack, running_stack_floor
from imagegate_server.bench.usage import RssSampler, tree_cpu_seconds

# The bytes in the reply, as the direct path decodes them (dall-e-2 defaults to a URL).
B64 = params_pb2.RESPONSE_FORMAT_B64_JSON
NAME = "overhead"
CASE = "256x256"
METHOD = "imagegate.v1.ImagesService/CreateImage"
HEALTH = "grpc.health.v1.Health/Check"
BODY = {
    "model": "dall-e-2",
    "prompt": "a red fox",
    "size": "256x256",
    "response_format": "b64_json",
}
PARAMETERS = params_pb2.GenerationParameters(
    prompt="a red fox", model="dall-e-2", size="256x256", response_format=B64
)
REQUEST = pb.CreateImageRequest(parameters=PARAMETERS)
CPU_TARGET_MS = 0.6
ADDED_P50_TARGET_MS = 0.6
THROUGHPUT_TARGET = 0.5
# Client connections at concurrency 64: several, as many callers would open, and what
# the scaling scenario needs to spread calls over workers (one connection is one worker).
CONNECTIONS = 8
FLOOR_CASE = "256x256, bare grpc.aio + httpx (stack floor)"


def gateway_call(pool: GrpcPool) -> Call:
    async def call() -> None:
        reply = await pool.stub().CreateImage(REQUEST, timeout=30)
        if not reply.result.images or not reply.result.images[0].data:
            raise ValueError("no image in the reply")

    return call


def floor_call(pool: GrpcPool) -> Call:
    """A gRPC health check: what any Python gRPC hop costs, before the gateway's own work."""
    stub = health_pb2_grpc.HealthStub(pool.channel())
    request = health_pb2.HealthCheckRequest()

    async def call() -> None:
        await stub.Check(request, timeout=30)

    return call


async def gateway_phase(
    generators: Generators,
    target: str,
    pid: int,
    concurrency: int,
    calls: int,
    time_limit_s: float,
    connections: int,
) -> tuple[LoadResult, float]:
    """The 256x256 call through the gateway: the load and the gateway's CPU seconds
    (its process tree: with workers, the supervisor and every worker)."""
    before = tree_cpu_seconds(pid)
    load = await generators.unary(
        target, METHOD, REQUEST, concurrency, calls, time_limit_s, gateway_call, connections
    )
    return load, tree_cpu_seconds(pid) - before


async def direct_phase(
    generators: Generators, emulator_url: str, concurrency: int, calls: int, time_limit_s: float
) -> LoadResult:
    return await generators.post_json(
        emulator_url, "images/generations", BODY, concurrency, calls, time_limit_s
    )


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    gen = ctx.generators
    levels = [(1, 20 if ctx.tiny else 2000), (64, 64 if ctx.tiny else 6400)]
    time_limit = 10.0 if ctx.tiny else 60.0
    measured: dict[tuple[str, int], LoadResult] = {}
    cpu: dict[int, float] = {}
    cpu_floor: dict[int, float] = {}
    async with running_stack(StackConfig(), ctx.workdir / NAME) as stack:
        warm = 8 if ctx.tiny else 256
        await gateway_phase(gen, stack.gateway_target, stack.gateway_pid, 8, warm, 30, 1)
        await direct_phase(gen, stack.emulator_url, 8, warm, 30)
        for concurrency, calls in levels:
            connections = 1 if concurrency == 1 else CONNECTIONS
            async with RssSampler(stack.gateway_pid) as rss:
                load, cpu_s = await gateway_phase(
                    gen,
                    stack.gateway_target,
                    stack.gateway_pid,
                    concurrency,
                    calls,
                    time_limit,
                    connections,
                )
            measured["gateway", concurrency] = load
            row = Row.of(
                NAME, CASE, "gateway", concurrency, load, rss.peak, cpu_s=cpu_s,
                generator=gen.grpc_name,
            )  # fmt: skip
            cpu[concurrency] = _cpu_ms(row)
            result.rows.append(row)
            load = await direct_phase(gen, stack.emulator_url, concurrency, calls, time_limit)
            measured["direct", concurrency] = load
            result.rows.append(
                Row.of(NAME, CASE, "direct", concurrency, load, generator=gen.http_name)
            )
        # The floor of the hop, to split the overhead into gRPC's and ours.
        calls = levels[0][1]
        before = tree_cpu_seconds(stack.gateway_pid)
        load = await gen.unary(
            stack.gateway_target,
            HEALTH,
            health_pb2.HealthCheckRequest(),
            1,
            calls,
            time_limit,
            floor_call,
        )
        floor_cpu = tree_cpu_seconds(stack.gateway_pid) - before
        result.rows.append(
            Row.of(
                NAME, "gRPC Health/Check (floor)", "gateway", 1, load, cpu_s=floor_cpu,
                generator=gen.grpc_name,
            )
        )  # fmt: skip
        # The floor of the stack: grpc.aio and httpx with nothing of the gateway's.
        async with running_stack_floor(stack.emulator_url, ctx.workdir / NAME) as floor:
            target, pid = floor
            await gateway_phase(gen, target, pid, 8, warm, 30, 1)
            for concurrency, calls in levels:
                connections = 1 if concurrency == 1 else CONNECTIONS
                load, cpu_s = await gateway_phase(
                    gen, target, pid, concurrency, calls, time_limit, connections
                )
                measured["floor", concurrency] = load
                row = Row.of(
                    NAME, FLOOR_CASE, "floor", concurrency, load, cpu_s=cpu_s,
                    generator=gen.grpc_name,
                )  # fmt: skip
                cpu_floor[concurrency] = _cpu_ms(row)
                result.rows.append(row)
    result.checks += checks(measured, cpu, cpu_floor)
    result.notes.append(
        f"{gen.note()}; gateway phases at concurrency 64 over {CONNECTIONS} connections; "
        "CPU per call is the gateway's user + system time from /proc (10 ms ticks) over "
        "the phase's calls; hey's latencies have 0.1 ms resolution; the stack floor is "
        "bench/stack_floor.py, grpc.aio + one httpx transport POST + decoding, nothing "
        "of the gateway's"
    )
    return result


def _cpu_ms(row: Row) -> float:
    """CPU per call of a row made with ``cpu_s`` (Row.of divides it by the calls made)."""
    assert row.gateway_cpu_ms_per_call is not None
    return row.gateway_cpu_ms_per_call


def checks(
    measured: dict[tuple[str, int], LoadResult],
    cpu_ms: dict[int, float],
    floor_cpu_ms: dict[int, float],
) -> list[Check]:
    gateway_1, direct_1 = measured["gateway", 1], measured["direct", 1]
    # No successful call is no latency at all: judge it as missed, not as 0 ms.
    added = (gateway_1.percentile_s(50) - direct_1.percentile_s(50)) * 1000
    added = added if gateway_1.ok and direct_1.ok else float("inf")
    throughput = measured["gateway", 64].throughput / max(measured["direct", 64].throughput, 1e-9)
    note_1 = f"gateway {gateway_1.percentile_s(50) * 1000:.2f} ms, direct "
    note_1 += f"{direct_1.percentile_s(50) * 1000:.2f} ms, stack floor "
    note_1 += f"{measured['floor', 1].percentile_s(50) * 1000:.2f} ms"
    note_64 = f"{measured['gateway', 64].throughput:.0f} vs "
    note_64 += f"{measured['direct', 64].throughput:.0f} calls/s (stack floor "
    note_64 += f"{measured['floor', 64].throughput:.0f})"
    note_cpu = f"at concurrency 1: {cpu_ms[1]:.3f} ms; stack floor {floor_cpu_ms[64]:.3f} ms "
    note_cpu += f"(c=1: {floor_cpu_ms[1]:.3f} ms)"
    return [
        Check(
            NAME, "gateway CPU per call, concurrency 64", cpu_ms[64], CPU_TARGET_MS, False,
            " ms", note_cpu,
        ),
        Check(
            NAME, "p50 latency added by the gateway, concurrency 1", added,
            ADDED_P50_TARGET_MS, False, " ms", note_1,
        ),
        Check(
            NAME, "throughput gateway/direct at concurrency 64", throughput,
            THROUGHPUT_TARGET, True, "x", note_64,
        ),
    ]  # fmt: skip
