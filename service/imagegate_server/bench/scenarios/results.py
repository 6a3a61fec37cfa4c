"""4. results: n images at 1536x1024, unary against streaming, time to first image byte,
and stored delivery (DELIVERY_STORED: the images go to the gateway's result store as
they are decoded, the answer carries links) beside inline for the same answer.

The emulator makes real-sized answers (``--real-sizes``: photographic PNGs as large
as OpenAI's, ~2.5 MB at 1536x1024), from cached templates with each image's identity
stamped in, so that rendering is not what is measured. For the unary paths the first
image byte arrives with the whole answer, so its time to first byte is its total
time; the streaming paths deliver each image as it is finished.

Memory for large answers (issue 13: at most 1.5x the answer's base64 size per call
in flight) is the gateway's peak RSS during a path's calls over its RSS before the
first call (idle), over the base64 size of one answer: the calls are sequential, so
one is in flight. Stored delivery runs first, so that what inline delivery leaves
in the allocator does not count as the stored path's (issue 22: stored CPU per call
at most inline's, memory at most 0.5x the base64 size). The stored rows store to the
local directory store; with ``IMAGEGATE_BENCH_S3_ENDPOINT`` (and the bucket and keys
as ``IMAGEGATE_STORE_S3_*`` settings in the environment) to that S3 service too.
Their links are fetched after the timed calls (a consumer's download is not the
gateway's call). Driven by the Python clients: ghz and hey report no time to the
first image of a stream.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2, results_pb2

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
from imagegate_server.bench.procs import Stack, StackConfig, running_stack
from imagegate_server.bench.usage import RssSampler, rss_bytes, tree_cpu_seconds

NAME = "results"
SIZE = "1536x1024"
MODEL = "gpt-image-2"
MEMORY_TARGET = 1.5
STORED_MEMORY_TARGET = 0.5
STORED_CPU_TARGET = 1.0
INLINE, STORED = params_pb2.DELIVERY_INLINE, params_pb2.DELIVERY_STORED
# Unary answers of n real-sized images are tens of MiB: above the default 4 MiB limit.
SEND_LIMIT = str(64 * MIB)
# One timed call: returns (seconds to the first image byte, image bytes received).
Timed = Callable[[float], Awaitable[tuple[float, int]]]


def _parameters(
    n: int, delivery: params_pb2.Delivery.ValueType = INLINE
) -> params_pb2.GenerationParameters:
    return params_pb2.GenerationParameters(
        prompt="a harbour at dawn", model=MODEL, size=SIZE, n=n, delivery=delivery
    )


def _stored_bytes(
    result: results_pb2.ImagesResult, n: int, last: list[results_pb2.ImagesResult]
) -> int:
    if len(result.images) != n or not all(image.HasField("stored") for image in result.images):
        raise ValueError("missing stored images")
    last[:] = [result]
    return sum(image.stored.size_bytes for image in result.images)


def _body(n: int, stream: bool) -> dict[str, object]:
    body: dict[str, object] = {"model": MODEL, "prompt": "a harbour at dawn", "size": SIZE, "n": n}
    return dict(body, stream=True) if stream else body


def gateway_unary(
    pool: GrpcPool, n: int, stored: list[results_pb2.ImagesResult] | None = None
) -> Timed:
    """``stored``: ask for DELIVERY_STORED, keeping the last result there."""

    async def call(began: float) -> tuple[float, int]:
        delivery = INLINE if stored is None else STORED
        reply = await pool.stub().CreateImage(
            pb.CreateImageRequest(parameters=_parameters(n, delivery)), timeout=300
        )
        if stored is not None:
            return time.perf_counter() - began, _stored_bytes(reply.result, n, stored)
        size = sum(len(image.data) for image in reply.result.images)
        if len(reply.result.images) != n or not size:
            raise ValueError("missing images")
        return time.perf_counter() - began, size

    return call


def gateway_stream(
    pool: GrpcPool, n: int, stored: list[results_pb2.ImagesResult] | None = None
) -> Timed:
    async def call(began: float) -> tuple[float, int]:
        first, size, images = 0.0, 0, 0
        delivery = INLINE if stored is None else STORED
        request = pb.CreateImageStreamRequest(parameters=_parameters(n, delivery))
        async for event in pool.stub().CreateImageStream(request, timeout=300):
            if event.HasField("image_chunk") and not event.image_chunk.HasField(
                "partial_image_index"
            ):
                first = first or time.perf_counter() - began
                size += len(event.image_chunk.data)
            elif event.HasField("result"):
                images = len(event.result.images)
                if stored is not None:  # the links arrive with the result
                    first = time.perf_counter() - began
                    size = _stored_bytes(event.result, n, stored)
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
    stores: list[tuple[str, dict[str, str]]] = [("stored", {})]
    s3_endpoint = os.environ.get("IMAGEGATE_BENCH_S3_ENDPOINT")
    if s3_endpoint:
        # The gateway's environment is cleaned of IMAGEGATE_*: the S3 settings go on.
        s3 = {k: v for k, v in os.environ.items() if k.startswith("IMAGEGATE_STORE_S3_")}
        s3.update(IMAGEGATE_STORE_BACKEND="s3", IMAGEGATE_STORE_S3_ENDPOINT=s3_endpoint)
        stores.append(("stored s3", s3))
    for label, store_env in stores:
        env = {"IMAGEGATE_MAX_SEND_MESSAGE_BYTES": SEND_LIMIT, **store_env}
        config = StackConfig(real_sizes=True, gateway_env=env)
        directory = ctx.workdir / NAME / label.replace(" ", "-")
        async with running_stack(config, directory) as stack:
            await _run_stack(ctx, stack, result, n, repeats, label, inline=label == "stored")
    result.notes.append(
        f"real-sized answers (--real-sizes, cached templates); {repeats} sequential calls "
        "per path; p50/p99 are total time, ttfb is "
        "time to the first final-image byte (for unary RPCs the whole answer; for stored "
        "delivery the result with its links); memory "
        "is peak RSS over the idle gateway's, per call in flight (one), over the "
        "answer's base64 size; stored rows (DELIVERY_STORED, local directory store"
        + (", then an S3 service" if s3_endpoint else "")
        + ") ran first in their gateway, and their links were fetched after the timed "
        "calls; driven by the Python clients (grpc.aio, httpx) whatever "
        "is installed: ghz and hey report no time to a stream's first image"
    )
    return result


async def _run_stack(
    ctx: Context,
    stack: Stack,
    result: ScenarioResult,
    n: int,
    repeats: int,
    label: str,
    *,
    inline: bool,
) -> None:
    """The stored paths of ``label``'s store, then (``inline``) the inline ones and
    the direct baselines, in one gateway; checks stored against inline."""
    pair = Pair(GrpcPool(stack.gateway_target), direct_client(stack.emulator_url, 8, 300))
    last: list[results_pb2.ImagesResult] = []
    try:
        await pair.grpc.ready()
        idle = rss_bytes(stack.gateway_pid)
        paths: list[tuple[str, str, Timed]] = [
            ("unary", label, gateway_unary(pair.grpc, n, last)),
            ("stream", label, gateway_stream(pair.grpc, n, last)),
        ]
        if inline:
            paths += [
                ("unary", "gateway", gateway_unary(pair.grpc, n)),
                ("unary", "direct", direct_unary(pair, n)),
                ("stream", "gateway", gateway_stream(pair.grpc, n)),
                ("stream", "direct", direct_stream(pair, n)),
            ]
        await _measure(direct_unary(pair, n), 1)  # warm-up of the emulator's templates
        rows: dict[tuple[str, str], Row] = {}
        for kind, path, call in paths:
            before = tree_cpu_seconds(stack.gateway_pid)
            async with RssSampler(stack.gateway_pid) as rss:
                load, firsts, size = await _measure(call, repeats)
            gateway = path != "direct"
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
                target = MEMORY_TARGET if path == "gateway" else STORED_MEMORY_TARGET
                if kind == "unary" or path != "gateway":
                    result.checks.append(
                        Check(
                            NAME, f"gateway memory per call in flight / answer's base64, "
                            f"n={n} {SIZE} {kind}" + ("" if path == "gateway" else f", {path}"),
                            ratio, target, False, "x",
                            f"RSS {idle / MIB:.0f} -> {rss.peak / MIB:.0f} MiB for "
                            f"{b64 / MIB:.1f} MiB of base64",
                        )
                    )  # fmt: skip
            rows[(kind, path)] = row
            result.rows.append(row)
        if last:
            await _fetch_links(last[0], n)
        if inline:
            for kind in ("unary", "stream"):
                _cpu_check(result, rows[(kind, label)], rows[(kind, "gateway")], n, kind)
    finally:
        await pair.close()


def _cpu_check(result: ScenarioResult, stored: Row, inline: Row, n: int, kind: str) -> None:
    if not (stored.gateway_cpu_ms_per_call and inline.gateway_cpu_ms_per_call):
        return
    ratio = stored.gateway_cpu_ms_per_call / inline.gateway_cpu_ms_per_call
    result.checks.append(
        Check(
            NAME, f"gateway CPU per call, stored / inline, n={n} {SIZE} {kind}", ratio,
            STORED_CPU_TARGET, False, "x",
            f"{stored.gateway_cpu_ms_per_call:.0f} ms stored, "
            f"{inline.gateway_cpu_ms_per_call:.0f} ms inline",
        )
    )  # fmt: skip


async def _fetch_links(last: results_pb2.ImagesResult, n: int) -> None:
    """The last stored result's links, fetched as a consumer would: every image there,
    as large as the result says."""
    from imagegate_server.client.fetch import result_images

    images = await result_images(last, timeout_s=120)
    if len(images) != n or not all(images):
        raise ValueError("a stored image could not be fetched by its link")
