"""CreateImage and CreateImageStream end to end, checked on both sides."""

from __future__ import annotations

import io

import grpc
import pytest
from gateway_support import NEWER_MODEL, assemble, trailer, violations
from google.protobuf import struct_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, results_pb2
from PIL import Image

from imagegate_server.emulator import Emulator, identity, read_identity
from imagegate_server.gateway.server import Gateway

GENERATIONS = "/v1/images/generations"


async def test_every_generation_parameter_reaches_openai_under_its_name(
    stub: object, emulator: Emulator
) -> None:
    parameters = params_pb2.GenerationParameters(
        prompt="a lighthouse at dusk",
        model="gpt-image-2.5-flare",
        n=2,
        size="1536x864",
        quality=params_pb2.QUALITY_XHIGH,
        background=params_pb2.BACKGROUND_OPAQUE,
        moderation=params_pb2.MODERATION_LOW,
        output_format=params_pb2.OUTPUT_FORMAT_WEBP,
        output_compression=0,
        user="user-1",
        safety_identifier="hash-of-user",
        complexity=params_pb2.COMPLEXITY_HIGH,
    )
    reply = await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))  # type: ignore[attr-defined]
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.body_kind == "json"
    assert entry.json == {
        "prompt": "a lighthouse at dusk",
        "model": "gpt-image-2.5-flare",
        "n": 2,
        "size": "1536x864",
        "quality": "xhigh",
        "background": "opaque",
        "moderation": "low",
        "output_format": "webp",
        "output_compression": 0,
        "user": "user-1",
        "safety_identifier": "hash-of-user",
        "complexity": "high",
    }
    assert entry.headers.get("Authorization", entry.headers.get("authorization")) == "<redacted>"
    result = reply.result
    assert len(result.images) == 2
    assert result.output_format == params_pb2.OUTPUT_FORMAT_WEBP
    assert result.size == "1536x864"
    for image in result.images:
        assert image.data[:4] == b"RIFF" and image.data[8:12] == b"WEBP"
        assert Image.open(io.BytesIO(image.data)).size == (1536, 864)
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens > 0


async def test_unset_parameters_are_omitted_and_the_default_model_is_sent(
    stub: object, emulator: Emulator, gateway: Gateway
) -> None:
    reply = await stub.CreateImage(  # type: ignore[attr-defined]
        pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt="a cat"))
    )
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json == {"prompt": "a cat", "model": gateway.settings.default_model}
    (image,) = reply.result.images
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    # Every caller gets its own image: the emulator stamps the request's identity.
    assert read_identity(image.data) == identity("a cat", 0)


async def test_dall_e_3_gets_its_own_parameters_and_returns_the_revised_prompt(
    stub: object, emulator: Emulator
) -> None:
    parameters = params_pb2.GenerationParameters(
        prompt="a fox",
        model="dall-e-3",
        style=params_pb2.STYLE_NATURAL,
        quality=params_pb2.QUALITY_HD,
        size="1792x1024",
        response_format=params_pb2.RESPONSE_FORMAT_B64_JSON,
    )
    reply = await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))  # type: ignore[attr-defined]
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json["style"] == "natural" and entry.json["response_format"] == "b64_json"
    (image,) = reply.result.images
    assert image.HasField("revised_prompt") and image.revised_prompt
    assert Image.open(io.BytesIO(image.data)).size == (1792, 1024)


async def test_url_results_come_back_as_urls(stub: object) -> None:
    parameters = params_pb2.GenerationParameters(
        prompt="a fox",
        model="dall-e-2",
        size="256x256",
        response_format=params_pb2.RESPONSE_FORMAT_URL,
    )
    reply = await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))  # type: ignore[attr-defined]
    (image,) = reply.result.images
    assert image.WhichOneof("content") == "url"
    assert image.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        (params_pb2.GenerationParameters(prompt="x", n=11), "parameters.n"),
        (params_pb2.GenerationParameters(prompt=""), "parameters.prompt"),
        (params_pb2.GenerationParameters(prompt="x" * 1001, model="dall-e-2"), "parameters.prompt"),
        (params_pb2.GenerationParameters(prompt="x", model="dall-e-3", n=2), "parameters.n"),
        (
            params_pb2.GenerationParameters(prompt="x", model="gpt-image-2", size="1000x1000"),
            "parameters.size",
        ),
        (
            params_pb2.GenerationParameters(
                prompt="x", model="gpt-image-2", response_format=params_pb2.RESPONSE_FORMAT_URL
            ),
            "parameters.response_format",
        ),
        (
            params_pb2.GenerationParameters(prompt="x", output_compression=101),
            "parameters.output_compression",
        ),
    ],
    ids=[
        "n",
        "empty-prompt",
        "prompt-length",
        "dall-e-3-n",
        "wxh",
        "response-format",
        "compression",
    ],
)
async def test_bad_parameters_are_rejected_locally_with_the_field_named(
    stub: object, emulator: Emulator, parameters: params_pb2.GenerationParameters, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))  # type: ignore[attr-defined]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(caught.value)
    assert emulator.journal.by_path(GENERATIONS) == []  # a bad request costs nothing upstream


async def test_allowlisted_extra_parameters_are_forwarded_verbatim(
    emulator: Emulator, start_gateway: object
) -> None:
    gateway = await start_gateway(extra_parameters=frozenset({"prompt_rewriter"}))  # type: ignore[operator]
    parameters = params_pb2.GenerationParameters(prompt="x", model="gpt-image-2")
    parameters.extra_parameters["prompt_rewriter"].CopyFrom(struct_pb2.Value(string_value="off"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        client = images_service_pb2_grpc.ImagesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.CreateImage(pb.CreateImageRequest(parameters=parameters))
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json["prompt_rewriter"] == "off"
    # The emulator, like OpenAI, does not know it: its 400 comes back, naming the param.
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.prompt_rewriter" in violations(caught.value)


async def test_extra_parameters_off_the_allowlist_are_rejected(
    stub: object, emulator: Emulator
) -> None:
    parameters = params_pb2.GenerationParameters(prompt="x")
    parameters.extra_parameters["seed"].CopyFrom(struct_pb2.Value(number_value=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))  # type: ignore[attr-defined]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.extra_parameters['seed']" in violations(caught.value)
    assert emulator.journal.by_path(GENERATIONS) == []


async def test_unknown_models_pass_through_unvalidated(stub: object, emulator: Emulator) -> None:
    # A model newer than the gateway's table, which the upstream serves.
    parameters = params_pb2.GenerationParameters(prompt="x", model=NEWER_MODEL, size="1024x1024")
    reply = await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))  # type: ignore[attr-defined]
    assert len(reply.result.images) == 1
    assert emulator.journal.by_path(GENERATIONS)[0].json["model"] == NEWER_MODEL


async def test_stream_relays_partial_images_before_the_generation_completes(
    stub: object, emulator: Emulator
) -> None:
    # Trickle the SSE body so the generation visibly takes time upstream.
    emulator.set_faults("slow;bytes=8192;ms=20")
    parameters = params_pb2.GenerationParameters(
        prompt="a boat", model="gpt-image-2", partial_images=2
    )
    call = stub.CreateImageStream(pb.CreateImageStreamRequest(parameters=parameters))  # type: ignore[attr-defined]
    events = []
    seen_partial_while_upstream_busy = False
    async for event in call:
        events.append(event)
        if event.WhichOneof("event") == "image_chunk" and event.image_chunk.HasField(
            "partial_image_index"
        ):
            (entry,) = emulator.journal.by_path(GENERATIONS)
            seen_partial_while_upstream_busy |= not entry.has_event("finished")
    assert seen_partial_while_upstream_busy
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json["stream"] is True and entry.json["partial_images"] == 2
    finals, partials, result = assemble(events)
    assert sorted(partials) == [(0, 0), (0, 1)]
    assert list(finals) == [0]
    assert finals[0].startswith(b"\x89PNG") and read_identity(finals[0]) == identity("a boat", 0)
    assert len(result.images) == 1 and not result.images[0].data
    assert result.usage.total_tokens > 0
    assert await trailer(call, "x-upstream-request-id") == entry.request_id


async def test_gif_and_dall_e_answers_are_sliced_without_upstream_streaming(
    stub: object, emulator: Emulator
) -> None:
    parameters = params_pb2.GenerationParameters(
        prompt="x",
        model="dall-e-2",
        size="256x256",
        n=2,
        response_format=params_pb2.RESPONSE_FORMAT_B64_JSON,
    )
    events = [
        e
        async for e in stub.CreateImageStream(pb.CreateImageStreamRequest(parameters=parameters))  # type: ignore[attr-defined]
    ]
    finals, partials, result = assemble(events)
    assert partials == {} and sorted(finals) == [0, 1]
    assert "stream" not in emulator.journal.by_path(GENERATIONS)[0].json
    assert isinstance(result, results_pb2.ImagesResult)


@pytest.mark.parametrize(
    "size", ["²x²", "①⓪②④x1024", "\u0661\u0660\u0662\u0664x\u0661\u0660\u0662\u0664"]
)
async def test_a_size_with_non_ascii_digits_is_invalid_argument(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator, size: str
) -> None:
    request = pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(prompt="x", model="gpt-image-2", size=size)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.size" in violations(caught.value)
    assert emulator.journal.entries == []
