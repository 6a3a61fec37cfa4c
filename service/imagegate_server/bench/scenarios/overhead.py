"""1. overhead: unary CreateImage of a small image, upstream answering at once.

The emulator has zero latency and cached renders (a 256x256 dall-e-2 PNG, ~6 KB),
so what is left is the cost of the hop: the gateway's gRPC server, validation, the
upstream client and the result mapping. Gateway and direct phases alternate per
concurrency level, against the same emulator, after one warm-up each.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.bench.clients import GrpcPool, Pair, decode_images, direct_client
from imagegate_server.bench.measure import Call, LoadResult, closed_loop
from imagegate_server.bench.model import Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import RssSampler, StackConfig, running_stack

# The bytes in the reply, as the direct path decodes them (dall-e-2 defaults to a URL).
B64 = params_pb2.RESPONSE_FORMAT_B64_JSON
NAME = "overhead"
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


def direct_call(pair: Pair) -> Call:
    async def call() -> None:
        response = await pair.http.post("images/generations", json=BODY)
        response.raise_for_status()
        decode_images(response.json())

    return call


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    levels = [(1, 20 if ctx.tiny else 2000), (64, 64 if ctx.tiny else 6400)]
    time_limit = 10.0 if ctx.tiny else 60.0
    async with running_stack(StackConfig(), ctx.workdir / NAME) as stack:
        pair = Pair(GrpcPool(stack.gateway_target), direct_client(stack.emulator_url, 256, 30))
        try:
            await pair.grpc.ready()
            gateway, direct = gateway_call(pair.grpc), direct_call(pair)
            for warm in (gateway, direct):
                await closed_loop(warm, 8, 64 if not ctx.tiny else 8, time_limit)
            measured: dict[tuple[str, int], LoadResult] = {}
            for concurrency, calls in levels:
                async with RssSampler(stack.gateway_pid) as rss:
                    load = await closed_loop(gateway, concurrency, calls, time_limit)
                measured["gateway", concurrency] = load
                result.rows.append(Row.of(NAME, "256x256", "gateway", concurrency, load, rss.peak))
                load = await closed_loop(direct, concurrency, calls, time_limit)
                measured["direct", concurrency] = load
                result.rows.append(Row.of(NAME, "256x256", "direct", concurrency, load))
            # The floor of the hop, to split the overhead into gRPC's and ours.
            calls = levels[0][1]
            load = await closed_loop(floor_call(pair.grpc), 1, calls, time_limit)
            result.rows.append(Row.of(NAME, "gRPC Health/Check (floor)", "gateway", 1, load))
        finally:
            await pair.close()
    gateway_1, direct_1 = measured["gateway", 1], measured["direct", 1]
    # No successful call is no latency at all: judge it as missed, not as 0 ms.
    p50 = gateway_1.percentile_s(50) / max(direct_1.percentile_s(50), 1e-9)
    p50 = p50 if gateway_1.ok else float("inf")
    result.checks.append(
        Check(NAME, "p50 latency gateway/direct at concurrency 1", p50, 1.3, False, "x")
    )
    throughput = measured["gateway", 64].throughput / max(measured["direct", 64].throughput, 1e-9)
    result.checks.append(
        Check(NAME, "throughput gateway/direct at concurrency 64", throughput, 0.7, True, "x")
    )
    return result
