"""4. results: n images at 1536x1024, unary against streaming, time to first image byte.

The emulator makes real-sized answers (``--real-sizes``: photographic PNGs as large
as OpenAI's, ~2.5 MB at 1536x1024), from cached templates with each image's identity
stamped in, so that rendering is not what is measured. For the unary paths the first
image byte arrives with the whole answer, so its time to first byte is its total
time; the streaming paths deliver each image as it is finished.

Memory for large answers (issue 13: at most 1.5x the answer's base64 size per call
in flight) is the gateway's peak RSS during a path's calls over its RSS before the
first call (idle), over the base64 size of one answer: the calls are sequential, so
one is in flight. Driven by the Python clients: ghz and hey report no time to the
first image of a stream.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.bench.clients import (
    GrpcPool,
    Pair,
    decode_images,
    direct_client,
    sse_events,
)
from imagegate_server.bench.loadgen import PYTHON_GRPC, PYTHON_HTTP
from imagegate_server.bench.measure import LoadResult, error_name, percentile
from imagegate_server.bench.model import MIB, Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import StackConfig, running_stack
from imagegate_server.bench.usage import RssSampler, rss_bytes, tree_cpu_seconds

NAME = "results"
SIZE = "1536x1024"
MODEL = "gpt-image-2"
MEMORY_TARGET = 1.5
# Unary answers of n real-sized images are tens of MiB: above the default 4 MiB limit.
SEND_LIMIT = str(64 * MIB)
# One timed call: returns (seconds to the first image byte, image bytes received).
Timed = Callable[[float], Awaitable[tuple[float, int]]]


def _parameters(n: int) -> params_pb2.GenerationParameters:
    return params_pb2.GenerationParameters(prompt="a harbour at dawn", model=MODEL, size=SIZE, n=n)


def _body(n: int, stream: bool) -> dict[str, object]:
    body: dict[str, object] = {"model": MODEL, "prompt": "a harbour at dawn", "size": SIZE, "n": n}
    return dict(body, stream=True) if stream else body


def gateway_unary(pool: GrpcPool, n: int) -> Timed:
    async def call(began: float) -> tuple[float, int]:
        reply = await pool.stub().CreateImage(
            pb.CreateImageRequest(parameters=_parameters(n)), timeout=300
        )
        size = sum(len(image.data) for image in reply.result.images)
        if len(reply.result.images) != n or not size:
            raise ValueError("missing images")
        return time.perf_counter() - began, size

    return call


def gateway_stream(pool: GrpcPool, n: int) -> Timed:
    async def call(began: float) -> tuple[float, int]:
        first, size, images = 0.0, 0, 0
        request = pb.CreateImageStreamRequest(parameters=_parameters(n))
        async for event in pool.stub().CreateImageStream(request, timeout=300):
            if event.HasField("image_chunk") and not event.image_chunk.HasField(
                "partial_image_index"
            ):
                first = first or time.perf_counter() - began
                size += len(event.image_chunk.data)
            elif event.HasField("result"):
                images = len(event.result.images)
        if images != n or not size:
            raise ValueError("missing images")
        return first, size

    return call


def direct_unary(pair: Pair, n: int) -> Timed:
    async def call(began: float) -> tuple[float, int]:
        response = await pair.http.post("images/generations", json=_body(n, False))
        response.raise_for_status()
        images = decode_images(response.json())
        if len(images) != n:
            raise ValueError("missing images")
        return time.perf_counter() - began, sum(map(len, images))

    return call


def direct_stream(pair: Pair, n: int) -> Timed:
    async def call(began: float) -> tuple[float, int]:
        first, size, images = 0.0, 0, 0
        request = pair.http.stream("POST", "images/generations", json=_body(n, True))
        async with request as response:
            response.raise_for_status()
            async for payload in sse_events(response):
                if str(payload.get("type", "")).endswith(".completed"):
                    size += sum(map(len, decode_images({"data": [payload]})))
                    first = first or time.perf_counter() - began
                    images += 1
        if images != n:
            raise ValueError("missing images")
        return first, size

    return call


async def _measure(call: Timed, repeats: int) -> tuple[LoadResult, list[float], int]:
    load, firsts, size = LoadResult(), [], 0
    started = time.perf_counter()
    for _ in range(repeats):
        began = time.perf_counter()
        try:
            first, size = await call(began)
        except Exception as exc:
            load.errors[error_name(exc)] += 1
        else:
            load.latencies_s.append(time.perf_counter() - began)
            firsts.append(first)
    load.elapsed_s = time.perf_counter() - started
    return load, firsts, size


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    n, repeats = (2, 1) if ctx.tiny else (10, 5)
    config = StackConfig(
        real_sizes=True, gateway_env={"IMAGEGATE_MAX_SEND_MESSAGE_BYTES": SEND_LIMIT}
    )
    async with running_stack(config, ctx.workdir / NAME) as stack:
        pair = Pair(GrpcPool(stack.gateway_target), direct_client(stack.emulator_url, 8, 300))
        try:
            await pair.grpc.ready()
            idle = rss_bytes(stack.gateway_pid)
            paths = [
                ("unary", "gateway", gateway_unary(pair.grpc, n)),
                ("unary", "direct", direct_unary(pair, n)),
                ("stream", "gateway", gateway_stream(pair.grpc, n)),
                ("stream", "direct", direct_stream(pair, n)),
            ]
            await _measure(paths[1][2], 1)  # warm-up of the emulator's templates
            for kind, path, call in paths:
                before = tree_cpu_seconds(stack.gateway_pid)
                async with RssSampler(stack.gateway_pid) as rss:
                    load, firsts, size = await _measure(call, repeats)
                gateway = path == "gateway"
                cpu_s = tree_cpu_seconds(stack.gateway_pid) - before if gateway else None
                row = Row.of(
                    NAME, f"n={n} {SIZE} {kind}", path, 1, load, rss.peak if gateway else None,
                    cpu_s=cpu_s, generator=PYTHON_GRPC if gateway else PYTHON_HTTP,
                )  # fmt: skip
                row.extra["ttfb_p50_ms"] = percentile(firsts, 50) * 1000
                row.extra["ttfb_p99_ms"] = percentile(firsts, 99) * 1000
                row.extra["kib_per_image"] = size / n / 1024
                if gateway:
                    # Base64 of the answer's images: 4 characters per 3 bytes.
                    b64 = 4 * -(-size // 3)
                    ratio = max(0, rss.peak - idle) / max(b64, 1)
                    row.extra["answer_b64_mib"] = b64 / MIB
                    row.extra["memory_over_b64"] = ratio
                    if kind == "unary":
                        result.checks.append(
                            Check(
                                NAME, f"gateway memory per call in flight / answer's base64, "
                                f"n={n} {SIZE} unary", ratio, MEMORY_TARGET, False, "x",
                                f"RSS {idle / MIB:.0f} -> {rss.peak / MIB:.0f} MiB for "
                                f"{b64 / MIB:.1f} MiB of base64",
                            )
                        )  # fmt: skip
                result.rows.append(row)
        finally:
            await pair.close()
    result.notes.append(
        f"real-sized answers (--real-sizes, cached templates); {repeats} sequential calls "
        "per path; p50/p99 are total time, ttfb is "
        "time to the first final-image byte (for unary RPCs the whole answer); memory "
        "is peak RSS over the idle gateway's, per call in flight (one), over the "
        "answer's base64 size; driven by the Python clients (grpc.aio, httpx) whatever "
        "is installed: ghz and hey report no time to a stream's first image"
    )
    return result
