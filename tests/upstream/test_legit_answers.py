"""The bounds never refuse an answer OpenAI could send, nor doubt its usage.

An answer refused, or a usage taken for an anomaly, is a call the caller paid for
and did not get (or got at a guessed price): the bounds and the usage ceiling must
stay clear of every legitimate answer. The emulator answers as OpenAI does, with
pictures as large, encoded, as OpenAI's (``real_sizes``), and usage counted as
OpenAI counts it; through a gateway, the largest answers each model and format
gives are taken, priced by their usage, and no counter moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, results_pb2
from support.gateways import started_gateways
from support.images import encode, make_image

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway

KEY = "sk-legit-answers-key"
Q = params_pb2


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    config = EmulatorConfig(api_key=KEY, cached_renders=True, real_sizes=True)
    async with Emulator(config) as emulator, started_gateways(KEY, emulator.base_url) as start:
        yield await start(max_send_message_bytes=512 * 1024 * 1024)


def _counted(gateway: Gateway) -> float:
    total = 0.0
    for family in gateway.metrics.registry.collect():
        if family.name in (
            "imagegate_upstream_answers_rejected",
            "imagegate_upstream_usage_anomalies",
        ):
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


GENERATIONS = [
    # The largest of each: n=10 at the dearest quality, each output format.
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-2", size="1536x1024",
                           quality=Q.QUALITY_HIGH, n=10),
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-2", n=2),  # size auto
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-1.5", size="1024x1536",
                           quality=Q.QUALITY_HIGH, output_format=Q.OUTPUT_FORMAT_WEBP,
                           background=Q.BACKGROUND_TRANSPARENT),
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-1", quality=Q.QUALITY_HIGH,
                           output_format=Q.OUTPUT_FORMAT_JPEG, output_compression=100),
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-2.5-sunburst",
                           size="2048x2048", quality=Q.QUALITY_MAX),
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-2.5-sunburst",
                           output_format=Q.OUTPUT_FORMAT_GIF, frame_count=16),
    Q.GenerationParameters(prompt="a harbour", model="gpt-image-2.5-sunburst",
                           output_format=Q.OUTPUT_FORMAT_SVG),
    Q.GenerationParameters(prompt="a harbour", model="dall-e-3", size="1792x1024",
                           quality=Q.QUALITY_HD, response_format=Q.RESPONSE_FORMAT_B64_JSON),
    Q.GenerationParameters(prompt="a harbour " * 3000, model="gpt-image-2", size="1024x1024"),
]  # fmt: skip


@pytest.mark.parametrize("parameters", GENERATIONS, ids=lambda p: f"{p.model}-{p.output_format}")
async def test_the_largest_legitimate_answers_are_taken_and_priced_by_usage(
    gateway: Gateway, parameters: params_pb2.GenerationParameters
) -> None:
    options = [("grpc.max_receive_message_length", 512 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}", options=options) as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        request = pb.CreateImageRequest(parameters=parameters)
        result = (await stub.CreateImage(request, timeout=120)).result
    assert len(result.images) == max(parameters.n, 1)
    assert all(image.data for image in result.images)
    per_image = parameters.model.startswith("dall-e")
    basis = results_pb2.COST_BASIS_PER_IMAGE if per_image else results_pb2.COST_BASIS_USAGE
    assert result.cost.basis == basis
    assert _counted(gateway) == 0


async def test_a_stream_with_every_partial_image_is_taken(gateway: Gateway) -> None:
    parameters = Q.GenerationParameters(
        prompt="a harbour", model="gpt-image-2", size="1536x1024", quality=Q.QUALITY_HIGH,
        n=4, partial_images=3,
    )  # fmt: skip
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        request = pb.CreateImageStreamRequest(parameters=parameters)
        replies = [reply async for reply in stub.CreateImageStream(request, timeout=120)]
    partials = {
        (r.image_chunk.image_index, r.image_chunk.partial_image_index)
        for r in replies
        if r.HasField("image_chunk") and r.image_chunk.HasField("partial_image_index")
    }
    assert len(partials) == 12
    assert replies[-1].result.cost.basis == results_pb2.COST_BASIS_USAGE
    assert _counted(gateway) == 0


async def test_an_edit_of_sixteen_images_at_high_fidelity_is_priced_by_usage(
    gateway: Gateway,
) -> None:
    picture = encode(make_image(2048, 768, noise=True, seed=1))
    parameters = Q.EditParameters(
        prompt="make it dusk", model="gpt-image-1.5", input_fidelity=Q.INPUT_FIDELITY_HIGH,
        images=[Q.FileInfo() for _ in range(16)], n=2, quality=Q.QUALITY_HIGH,
    )  # fmt: skip
    messages = [pb.CreateImageEditRequest(parameters=parameters)]
    for index in range(16):
        for start in range(0, len(picture), 1024 * 1024):
            chunk = Q.FileChunk(
                role=Q.FILE_ROLE_IMAGE, image_index=index, data=picture[start : start + 1024 * 1024]
            )
            messages.append(pb.CreateImageEditRequest(chunk=chunk))
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}", options=options) as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        result = (await stub.CreateImageEdit(iter(messages), timeout=120)).result
    assert len(result.images) == 2
    assert result.cost.basis == results_pb2.COST_BASIS_USAGE
    assert result.usage.input_tokens_details.image_tokens > 16 * 1000
    assert _counted(gateway) == 0
