"""3. uploads: CreateImageEdit with large inputs against a direct multipart POST.

The inputs are noise PNGs (incompressible, valid, accepted by both the gateway and
the emulator), generated once and cached in the system's temporary directory.
Memory per in-flight upload is the gateway's RSS growth during the phase divided by
the concurrency; the gateway promises to spool past ``spool_threshold_bytes``, so the
bound is 1 MiB of working memory plus that threshold.

The checked cases ask for JPEG answers (about 0.3 MB) so that the memory measured is
the upload's: an edit of a noise image answered as PNG is itself a 3.6 MB image, and
its base64 JSON, parsed and decoded, outweighs the upload's own buffers. One more
case, reported but not checked, keeps PNG answers to show what large answers cost.
The emulator makes real-sized answers (``--real-sizes``).

Load comes from ghz (the client stream: parameters, then 64 KiB chunks) and hey (the
same multipart body as httpx sends) when installed, else from the Python clients.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2
from PIL import Image

from imagegate_server.bench.clients import GrpcPool, Pair, decode_images, direct_client
from imagegate_server.bench.clients import upload_chunks as chunks_of
from imagegate_server.bench.loadgen import Generators
from imagegate_server.bench.measure import Call, LoadResult
from imagegate_server.bench.model import MIB, Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import Stack, StackConfig, running_stack
from imagegate_server.bench.usage import RssSampler, rss_bytes, tree_cpu_seconds
from imagegate_server.settings import Settings

NAME = "uploads"
MODEL = "gpt-image-2"
PROMPT = "make it blue"
IMAGE = params_pb2.FILE_ROLE_IMAGE
METHOD = "imagegate.v1.ImagesService/CreateImageEdit"


def noise_png(target_bytes: int) -> bytes:
    """A valid RGB PNG of about ``target_bytes`` (random pixels do not compress)."""
    cache = Path(tempfile.gettempdir()) / "imagegate-bench"
    cache.mkdir(exist_ok=True)
    path = cache / f"noise-{target_bytes}.png"
    if path.exists():
        return path.read_bytes()
    side = math.isqrt(target_bytes // 3)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    path.write_bytes(out.getvalue())
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    upload_bytes: int
    calls: int
    answer: str = "jpeg"
    """``output_format`` of the answer: jpeg keeps it small, png makes it image-sized."""
    checked: bool = True


CASES = (Case(4 * MIB, 96), Case(40 * MIB, 32), Case(4 * MIB, 48, "png", checked=False))
TINY_CASES = (Case(512 * 1024, 8), Case(2 * MIB, 8, "png", checked=False))
_OUTPUT_FORMATS = {"jpeg": params_pb2.OUTPUT_FORMAT_JPEG, "png": params_pb2.OUTPUT_FORMAT_PNG}


def edit_requests(data: bytes, answer: str) -> list[pb.CreateImageEditRequest]:
    """The upload stream: the parameters, then the image in 64 KiB chunks."""
    info = params_pb2.FileInfo(filename="in.png", content_type="image/png", size_bytes=len(data))
    parameters = params_pb2.EditParameters(
        prompt=PROMPT, model=MODEL, images=[info], output_format=_OUTPUT_FORMATS[answer]
    )
    messages = [pb.CreateImageEditRequest(parameters=parameters)]
    for piece in chunks_of(data):
        chunk = params_pb2.FileChunk(role=IMAGE, image_index=0, data=bytes(piece))
        messages.append(pb.CreateImageEditRequest(chunk=chunk))
    return messages


def gateway_call(pool: GrpcPool, data: bytes, answer: str = "jpeg") -> Call:
    messages = edit_requests(data, answer)

    async def requests() -> AsyncIterator[pb.CreateImageEditRequest]:
        for message in messages:
            yield message

    async def call() -> None:
        reply = await pool.stub().CreateImageEdit(requests(), timeout=300)
        if not reply.result.images or not reply.result.images[0].data:
            raise ValueError("no image in the reply")

    return call


def _fields(answer: str) -> dict[str, str]:
    return {"prompt": PROMPT, "model": MODEL, "output_format": answer}


def direct_call(pair: Pair, data: bytes, answer: str = "jpeg") -> Call:
    async def call() -> None:
        response = await pair.http.post(
            "images/edits", data=_fields(answer), files={"image": ("in.png", data, "image/png")}
        )
        response.raise_for_status()
        decode_images(response.json())

    return call


def multipart_body(data: bytes, answer: str) -> tuple[bytes, str]:
    """The multipart body and content type httpx sends for :func:`direct_call`, for hey."""
    request = httpx.Request(
        "POST",
        "http://127.0.0.1/v1/images/edits",
        data=_fields(answer),
        files={"image": ("in.png", data, "image/png")},
    )
    return request.read(), request.headers["content-type"]


async def _gateway_phase(
    gen: Generators,
    stack: Stack,
    pair: Pair,
    data: bytes,
    answer: str,
    concurrency: int,
    calls: int,
) -> LoadResult:
    return await gen.unary(
        stack.gateway_target, METHOD, edit_requests(data, answer), concurrency, calls, 300,
        lambda pool: gateway_call(pool, data, answer),
    )  # fmt: skip


async def _direct_phase(
    gen: Generators,
    stack: Stack,
    pair: Pair,
    data: bytes,
    answer: str,
    concurrency: int,
    calls: int,
) -> LoadResult:
    body, content_type = await asyncio.to_thread(multipart_body, data, answer)
    url = stack.emulator_url.rstrip("/") + "/images/edits"
    fallback = direct_call(pair, data, answer)
    return await gen.post(url, body, content_type, concurrency, calls, 300, fallback)


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    gen = ctx.generators
    concurrency = 4 if ctx.tiny else 16
    spool = Settings().spool_threshold_bytes
    bound_mib = 1 + spool / MIB
    async with running_stack(StackConfig(real_sizes=True), ctx.workdir / NAME) as stack:
        pair = Pair(GrpcPool(stack.gateway_target), direct_client(stack.emulator_url, 64, 300))
        try:
            await pair.grpc.ready()
            idle = rss_bytes(stack.gateway_pid)
            for case in TINY_CASES if ctx.tiny else CASES:
                data = await asyncio.to_thread(noise_png, case.upload_bytes)
                label = f"{len(data) / MIB:.1f} MiB, {case.answer} answer"
                # Warm-up at full concurrency, so the baseline already holds what any
                # burst leaves behind (allocator arenas, connections), not per-call memory.
                await _gateway_phase(gen, stack, pair, data, case.answer, concurrency, concurrency)
                baseline = rss_bytes(stack.gateway_pid)
                before = tree_cpu_seconds(stack.gateway_pid)
                async with RssSampler(stack.gateway_pid) as rss:
                    load = await _gateway_phase(
                        gen, stack, pair, data, case.answer, concurrency, case.calls
                    )
                cpu_s = tree_cpu_seconds(stack.gateway_pid) - before
                g = Row.of(
                    NAME, label, "gateway", concurrency, load, rss.peak, cpu_s=cpu_s,
                    generator=gen.grpc_name,
                )  # fmt: skip
                g.extra["mib_per_s"] = load.throughput * len(data) / MIB
                d_load = await _direct_phase(
                    gen, stack, pair, data, case.answer, concurrency, case.calls
                )
                d = Row.of(NAME, label, "direct", concurrency, d_load, generator=gen.http_name)
                d.extra["mib_per_s"] = d_load.throughput * len(data) / MIB
                result.rows += [g, d]
                per_call = max(0, rss.peak - baseline) / MIB / concurrency
                g.extra["mib_per_upload"] = per_call
                # Stricter: growth over the gateway's RSS before its first upload.
                g.extra["mib_per_upload_from_idle"] = max(0, rss.peak - idle) / MIB / concurrency
                if not case.checked:
                    continue
                ratio = load.throughput / max(d_load.throughput, 1e-9)
                result.checks.append(
                    Check(NAME, f"throughput gateway/direct, {label}", ratio, 0.7, True, "x")
                )
                result.checks.append(
                    Check(
                        NAME,
                        f"gateway memory per in-flight upload, {label}",
                        per_call,
                        bound_mib,
                        False,
                        " MiB",
                        f"RSS {baseline / MIB:.0f} -> {rss.peak / MIB:.0f} MiB",
                    )
                )
        finally:
            await pair.close()
    result.notes.append(
        f"concurrency {concurrency}; real-sized answers; bound = 1 MiB + spool threshold "
        f"({spool / MIB:g} MiB); memory is RSS growth over the warmed-up baseline "
        "(mib_per_upload_from_idle: over the RSS before the first upload); "
        f"{gen.note()}"
    )
    return result
