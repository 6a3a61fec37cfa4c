"""2. capacity: how many calls the gateway holds in flight while each takes 10 s upstream.

The calls of a step start over a short ramp (2,000 a second, so that connection
bursts do not overflow listen backlogs; see :func:`ramped`), all are in flight
together since each lasts longer than the ramp, and the step passes only if every
one succeeds.
Steps grow until the first failure (or the last step). Each step gets a fresh
emulator and gateway, so idle upstream connections of the previous step neither
count against the next step's file descriptors nor its RSS.

Settings the gateway needs for this (documented in the report):
``IMAGEGATE_MAX_CONNECTIONS`` above the in-flight count, because over HTTP/1.1 each
upstream call holds one connection (the default of 4,096 would queue the rest), and
an open-file limit above twice the count (one gRPC stream is cheap, but each
upstream connection is a socket).
"""

from __future__ import annotations

import math

from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.bench.clients import DirectPool, GrpcPool, decode_images
from imagegate_server.bench.loadgen import PYTHON_GRPC, PYTHON_HTTP
from imagegate_server.bench.measure import Call, LoadResult, ramped
from imagegate_server.bench.model import Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import Stack, StackConfig, running_stack
from imagegate_server.bench.usage import RssSampler, tree_cpu_seconds

# The bytes in the reply, as the direct path decodes them (dall-e-2 defaults to a URL).
B64 = params_pb2.RESPONSE_FORMAT_B64_JSON
NAME = "capacity"
STEPS = (1000, 2500, 5000, 10000)
TINY_STEPS = (50,)
TARGET = 10000
RSS_LIMIT_MIB = 1024.0
CALLS_PER_CHANNEL = 1000
RAMP_PER_S = 2000
MAX_CONNECTIONS = "12000"
BODY = {"model": "dall-e-2", "prompt": "held", "size": "256x256", "response_format": "b64_json"}
REQUEST = pb.CreateImageRequest(
    parameters=params_pb2.GenerationParameters(
        prompt="held", model="dall-e-2", size="256x256", response_format=B64
    )
)


def gateway_call(pool: GrpcPool, timeout_s: float) -> Call:
    async def call() -> None:
        reply = await pool.stub().CreateImage(REQUEST, timeout=timeout_s)
        if not reply.result.images:
            raise ValueError("no image in the reply")

    return call


def _row(
    count: int,
    path: str,
    load: LoadResult,
    peak_rss: int | None = None,
    cpu_s: float | None = None,
) -> Row:
    generator = PYTHON_GRPC if path == "gateway" else PYTHON_HTTP
    row = Row.of(
        NAME, f"{count} held", path, count, load, peak_rss, cpu_s=cpu_s, generator=generator
    )
    row.extra["peak_in_flight"] = load.peak_in_flight
    return row


async def _step(stack: Stack, count: int, latency_s: float) -> tuple[Row, Row]:
    timeout_s = latency_s * 6 + 30
    ramp_s = min(count / RAMP_PER_S, latency_s / 2)
    pool = GrpcPool(stack.gateway_target, math.ceil(count / CALLS_PER_CHANNEL))
    try:
        await pool.ready()
        before = tree_cpu_seconds(stack.gateway_pid)
        async with RssSampler(stack.gateway_pid) as rss:
            load = await ramped(gateway_call(pool, timeout_s), count, ramp_s)
        cpu_s = tree_cpu_seconds(stack.gateway_pid) - before
        gateway_row = _row(count, "gateway", load, rss.peak, cpu_s)
    finally:
        await pool.close()
    http = DirectPool(stack.emulator_url, count, timeout_s)

    async def direct() -> None:
        response = await http.client().post("images/generations", json=BODY)
        response.raise_for_status()
        decode_images(response.json())

    try:
        load = await ramped(direct, count, ramp_s)
    finally:
        await http.aclose()
    return gateway_row, _row(count, "direct", load)


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    latency_s = 1.0 if ctx.tiny else 10.0
    config = StackConfig(
        latency_ms=latency_s * 1000, gateway_env={"IMAGEGATE_MAX_CONNECTIONS": MAX_CONNECTIONS}
    )
    held, held_rss = 0, 0.0
    for count in TINY_STEPS if ctx.tiny else STEPS:
        async with running_stack(config, ctx.workdir / NAME / str(count)) as stack:
            gateway_row, direct_row = await _step(stack, count, latency_s)
        result.rows += [gateway_row, direct_row]
        if gateway_row.errors:
            result.notes.append(f"{count} in flight: {gateway_row.error_kinds}; stopped stepping")
            break
        if gateway_row.extra["peak_in_flight"] < count:
            result.notes.append(f"{count}: calls finished before the ramp ended")
        held, held_rss = count, gateway_row.gateway_peak_rss_mib or 0.0
    target = TINY_STEPS[-1] if ctx.tiny else TARGET
    result.checks.append(
        Check(NAME, "calls held in flight, all succeeding", held, target, True, " calls")
    )
    result.checks.append(
        Check(NAME, f"gateway peak RSS at {held} in flight", held_rss, RSS_LIMIT_MIB, False, " MiB")
    )
    result.notes.append(
        f"upstream latency {latency_s:g} s per call; gateway IMAGEGATE_MAX_CONNECTIONS="
        f"{MAX_CONNECTIONS}; one gRPC channel per {CALLS_PER_CHANNEL} calls; the direct "
        "client pools its connections in shards, as the gateway does. Driven by the Python "
        "clients whatever is installed: the calls must start over a ramp (see ramped), "
        "which ghz and hey cannot do; CPU per call counts the whole step (accepting, "
        "holding and answering every call)"
    )
    return result
