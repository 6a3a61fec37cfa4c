"""Arbitrary parameters and upload streams never make the gateway answer UNKNOWN or INTERNAL.

Whatever a caller sends, the answer is a result or a clear status: malformed input is
INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for caps), never a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from gateway_support import UploadStream, sync_upload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.images import png

from imagegate_server.gateway.server import Gateway

ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Unknown models pass through; the emulator, like OpenAI, may refuse them.
    grpc.StatusCode.NOT_FOUND,
}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

models = st.sampled_from(
    [
        "gpt-image-1.5",
        "gpt-image-2",
        "gpt-image-2.5-flare",
        "dall-e-2",
        "dall-e-3",
        "gpt-image-1-mini",
        "x",
    ]
)
sizes = st.one_of(
    st.sampled_from(["auto", "256x256", "1024x1024", "1536x1024", "1792x1024", "1536x864"]),
    st.text(max_size=12),
)
enum_numbers = st.integers(min_value=0, max_value=12)  # beyond each enum's range, too
small = st.integers(min_value=0, max_value=20)


@st.composite
def generation_parameters(draw: st.DrawFn) -> params_pb2.GenerationParameters:
    p = params_pb2.GenerationParameters(prompt=draw(st.text(max_size=40)))
    if draw(st.booleans()):
        p.model = draw(models)
    if draw(st.booleans()):
        p.n = draw(small)
    if draw(st.booleans()):
        p.size = draw(sizes)
    for name in (
        "quality",
        "response_format",
        "style",
        "background",
        "moderation",
        "output_format",
        "complexity",
    ):
        if draw(st.booleans()):
            setattr(p, name, draw(enum_numbers))
    for name in ("output_compression", "partial_images", "frame_count", "frame_duration_ms"):
        if draw(st.booleans()):
            setattr(p, name, draw(st.integers(min_value=0, max_value=200)))
    if draw(st.booleans()):
        p.svg.model = draw(st.text(max_size=5))
        p.svg.reasoning.effort = draw(enum_numbers)
    if draw(st.booleans()):
        p.extra_parameters["seed"].number_value = draw(st.floats(allow_nan=True))
    return p


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
async def fuzz_gateway(start_gateway: object) -> Gateway:
    return await start_gateway(max_retries=0)  # type: ignore[no-any-return, operator]


@pytest.fixture
async def fuzz_stub(
    fuzz_gateway: Gateway,
) -> AsyncIterator[images_service_pb2_grpc.ImagesServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fuzz_gateway.port}") as channel:
        yield images_service_pb2_grpc.ImagesServiceStub(channel)


@FUZZ
@given(parameters=generation_parameters())
async def test_any_generation_parameters_get_a_clear_answer(
    fuzz_stub: images_service_pb2_grpc.ImagesServiceStub,
    parameters: params_pb2.GenerationParameters,
) -> None:
    parameters.n = min(parameters.n, 2) if parameters.HasField("n") else 1  # keep renders cheap
    code = await _code(fuzz_stub.CreateImage(pb.CreateImageRequest(parameters=parameters)))
    assert code in ACCEPTABLE, (code, parameters)


@st.composite
def upload_streams(draw: st.DrawFn) -> UploadStream:
    image = png(16, 16, (200, 30, 30, 0) if draw(st.booleans()) else (200, 30, 30))
    declared = draw(st.integers(min_value=0, max_value=3))
    parameters = params_pb2.EditParameters(
        prompt=draw(st.text(max_size=10)),
        model=draw(models),
        images=[
            params_pb2.FileInfo(
                filename=draw(st.text(max_size=8)),
                content_type=draw(st.sampled_from(["", "image/png", "text/plain"])),
            )
            for _ in range(declared)
        ],
    )
    if draw(st.booleans()):
        parameters.mask.SetInParent()
    messages: list[object] = []
    if draw(st.booleans()):
        messages.append(pb.CreateImageEditRequest(parameters=parameters))
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        kind = draw(st.sampled_from(["image", "garbage", "params", "empty"]))
        if kind == "params":
            messages.append(pb.CreateImageEditRequest(parameters=parameters))
        elif kind == "empty":
            messages.append(pb.CreateImageEditRequest())
        else:
            data = image if kind == "image" else draw(st.binary(max_size=64))
            chunk = params_pb2.FileChunk(
                role=draw(st.integers(min_value=0, max_value=4)),
                image_index=draw(st.integers(min_value=0, max_value=4)),
                data=data,
            )
            messages.append(pb.CreateImageEditRequest(chunk=chunk))
    return UploadStream(messages)


@FUZZ
@given(stream=upload_streams())
async def test_any_upload_stream_gets_a_clear_answer(
    fuzz_gateway: Gateway, stream: UploadStream
) -> None:
    error = await sync_upload(fuzz_gateway, "CreateImageEdit", stream)
    code = grpc.StatusCode.OK if error is None else error.code()
    assert code in ACCEPTABLE, (code, stream.messages)
