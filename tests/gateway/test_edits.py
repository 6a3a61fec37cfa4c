"""CreateImageEdit(Stream) and CreateImageVariation(Stream): the upload protocol end to end."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io

import grpc
import pytest
from gateway_support import (
    UploadStream,
    assemble,
    chunks_of,
    edit_requests,
    rejected_upload,
    violations,
)
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from PIL import Image
from support.images import mask_png, png

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway

EDITS = "/v1/images/edits"
IMAGE, MASK = params_pb2.FILE_ROLE_IMAGE, params_pb2.FILE_ROLE_MASK


async def test_several_images_and_a_mask_reach_openai_as_multipart(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    first, second, mask = (
        png(64, 64, mode="RGB"),
        png(64, 64, mode="RGB", noise=True),
        png(64, 64, (200, 30, 30, 0)),
    )
    parameters = params_pb2.EditParameters(
        prompt="add a hat",
        model="gpt-image-2.5-flare",
        images=[
            params_pb2.FileInfo(
                filename="cat.png", content_type="image/png", size_bytes=len(first)
            ),
            params_pb2.FileInfo(),  # no name, no type: both derived from the bytes
        ],
        mask=params_pb2.FileInfo(filename="mask.png"),
        input_fidelity=params_pb2.INPUT_FIDELITY_HIGH,
        n=2,
        output_compression=50,
        output_format=params_pb2.OUTPUT_FORMAT_JPEG,
    )
    # Chunks of different files may interleave.
    chunks = [*chunks_of(MASK, mask), *chunks_of(IMAGE, second, 1), *chunks_of(IMAGE, first, 0)]
    reply = await stub.CreateImageEdit(edit_requests(parameters, chunks))
    (entry,) = emulator.journal.by_path(EDITS)
    assert entry.body_kind == "multipart"
    files = [(f.field, f.filename, f.content_type, f.sha256) for f in entry.files]
    assert files == [
        ("image[]", "cat.png", "image/png", hashlib.sha256(first).hexdigest()),
        ("image[]", "image.png", "image/png", hashlib.sha256(second).hexdigest()),
        ("mask", "mask.png", "image/png", hashlib.sha256(mask).hexdigest()),
    ]
    assert dict(entry.form) == {
        "prompt": "add a hat",
        "model": "gpt-image-2.5-flare",
        "input_fidelity": "high",
        "n": "2",
        "output_compression": "50",
        "output_format": "jpeg",
    }
    assert len(reply.result.images) == 2
    assert all(image.data.startswith(b"\xff\xd8\xff") for image in reply.result.images)


async def test_one_image_is_sent_as_image_not_image_array(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    data = png(32, 32, mode="RGB")
    parameters = params_pb2.EditParameters(prompt="x", images=[params_pb2.FileInfo()])
    await stub.CreateImageEdit(edit_requests(parameters, chunks_of(IMAGE, data)))
    (entry,) = emulator.journal.by_path(EDITS)
    assert [f.field for f in entry.files] == ["image"]


async def test_referenced_images_go_upstream_as_the_json_edit_body(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    import base64

    data_url = "data:image/png;base64," + base64.b64encode(png(32, 32, mode="RGB")).decode()
    parameters = params_pb2.EditParameters(
        prompt="x",
        model="gpt-image-2",
        image_references=[params_pb2.ImageReference(image_url=data_url)],
    )
    reply = await stub.CreateImageEdit(edit_requests(parameters, []))
    (entry,) = emulator.journal.by_path(EDITS)
    assert entry.body_kind == "json"
    assert entry.json["images"] == [{"image_url": data_url}]
    assert len(reply.result.images) == 1


async def test_a_result_over_4_mib_reaches_a_client_with_default_limits(
    emulator: Emulator, start_gateway: object
) -> None:
    # Edits keep the unmasked pixels, so an incompressible input gives results of
    # about its own size: two 1024x1024 noise images are over 4 MiB together.
    gateway: Gateway = await start_gateway(max_send_message_bytes=4 * 1024 * 1024)  # type: ignore[operator]
    source, mask = png(1024, 1024, mode="RGB", noise=True), mask_png(1024, 1024)
    parameters = params_pb2.EditParameters(
        prompt="x",
        model="gpt-image-2",
        n=2,
        size="1024x1024",
        images=[params_pb2.FileInfo()],
        mask=params_pb2.FileInfo(),
    )
    chunks = [*chunks_of(IMAGE, source), *chunks_of(MASK, mask)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        client = images_service_pb2_grpc.ImagesServiceStub(channel)
        call = client.CreateImageEditStream(
            edit_requests(parameters, chunks, pb.CreateImageEditStreamRequest)
        )
        finals, _, result = assemble([event async for event in call])
        assert sorted(finals) == [0, 1] and len(result.images) == 2
        assert sum(len(image) for image in finals.values()) > 4 * 1024 * 1024
        for image in finals.values():
            assert Image.open(io.BytesIO(image)).size == (1024, 1024)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.CreateImageEdit(edit_requests(parameters, chunks))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "CreateImageEditStream" in (caught.value.details() or "")


def _bad(parameters: params_pb2.EditParameters, *later: object) -> UploadStream:
    return UploadStream(
        [pb.CreateImageEditRequest(parameters=parameters), *later]  # type: ignore[list-item]
    )


ONE_IMAGE = params_pb2.EditParameters(prompt="x", images=[params_pb2.FileInfo()])
CHUNK = pb.CreateImageEditRequest(
    chunk=params_pb2.FileChunk(role=IMAGE, data=png(16, 16, mode="RGB"))
)


@pytest.mark.parametrize(
    ("stream", "field"),
    [
        (UploadStream([CHUNK]), "parameters"),
        (_bad(ONE_IMAGE, CHUNK, pb.CreateImageEditRequest(parameters=ONE_IMAGE)), "parameters"),
        (
            _bad(
                ONE_IMAGE,
                pb.CreateImageEditRequest(
                    chunk=params_pb2.FileChunk(role=IMAGE, image_index=3, data=b"x")
                ),
            ),
            "chunk[0].image_index",
        ),
        (
            _bad(ONE_IMAGE, pb.CreateImageEditRequest(chunk=params_pb2.FileChunk(data=b"x"))),
            "chunk[0].role",
        ),
        (
            _bad(
                ONE_IMAGE,
                pb.CreateImageEditRequest(chunk=params_pb2.FileChunk(role=MASK, data=b"x")),
            ),
            "chunk[0].role",
        ),
        (_bad(ONE_IMAGE), "parameters.images[0]"),
        (_bad(params_pb2.EditParameters(prompt="x")), "parameters.images"),
        (
            _bad(
                params_pb2.EditParameters(
                    prompt="x", images=[params_pb2.FileInfo(size_bytes=10**6)]
                ),
                CHUNK,
            ),
            "parameters.images[0].size_bytes",
        ),
        (
            _bad(
                ONE_IMAGE,
                pb.CreateImageEditRequest(
                    chunk=params_pb2.FileChunk(role=IMAGE, data=b"not an image")
                ),
            ),
            "parameters.images[0]",
        ),
        (
            _bad(
                params_pb2.EditParameters(
                    prompt="x", images=[params_pb2.FileInfo(content_type="image/gif")]
                ),
                CHUNK,
            ),
            "parameters.images[0]",
        ),
        (
            _bad(
                params_pb2.EditParameters(
                    prompt="x", model="dall-e-2", images=[params_pb2.FileInfo()]
                ),
                pb.CreateImageEditRequest(
                    chunk=params_pb2.FileChunk(role=IMAGE, data=png(32, 16, mode="RGB"))
                ),
            ),
            "parameters.images[0]",
        ),
        (
            _bad(
                params_pb2.EditParameters(
                    prompt="x", images=[params_pb2.FileInfo()], mask=params_pb2.FileInfo()
                ),
                CHUNK,
                pb.CreateImageEditRequest(
                    chunk=params_pb2.FileChunk(role=MASK, data=png(8, 8, (200, 30, 30, 0)))
                ),
            ),
            "parameters.mask",
        ),
        (
            _bad(
                params_pb2.EditParameters(
                    prompt="x",
                    images=[params_pb2.FileInfo()],
                    image_references=[params_pb2.ImageReference(file_id="file-1")],
                ),
            ),
            "parameters.image_references",
        ),
    ],
    ids=[
        "chunk-first",
        "second-parameters",
        "unknown-index",
        "no-role",
        "undeclared-mask",
        "missing-bytes",
        "no-image",
        "truncated",
        "not-an-image",
        "declared-type-lies",
        "dall-e-2-not-square",
        "mask-dimensions",
        "mixed-uploads-and-references",
    ],
)
async def test_protocol_and_file_violations_are_invalid_argument_before_any_upstream_call(
    gateway: Gateway,
    emulator: Emulator,
    stream: UploadStream,
    field: str,
) -> None:
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error), violations(error)
    assert emulator.journal.by_path(EDITS) == []


async def test_an_oversize_upload_fails_at_the_cap_without_reading_the_rest(
    gateway: Gateway, emulator: Emulator
) -> None:
    # dall-e-2 takes images under 4 MB; stream 16 MiB without declaring a size.
    parameters = params_pb2.EditParameters(
        prompt="x", model="dall-e-2", images=[params_pb2.FileInfo()]
    )
    head = png(16, 16, mode="RGB")
    piece = params_pb2.FileChunk(role=IMAGE, data=bytes(64 * 1024))
    chunks = [params_pb2.FileChunk(role=IMAGE, data=head)] + [piece] * 256
    stream = edit_requests(parameters, chunks)
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.images[0]" in violations(error)
    # 4 MiB is 64 chunks; allow for gRPC's flow-control window, but not the 16 MiB.
    assert stream.pulled < 128, stream.pulled
    assert emulator.journal.by_path(EDITS) == []


async def test_a_declared_oversize_file_is_rejected_before_any_byte(gateway: Gateway) -> None:
    parameters = params_pb2.EditParameters(
        prompt="x", images=[params_pb2.FileInfo(size_bytes=60 * 1024 * 1024)]
    )
    stream = edit_requests(parameters, chunks_of(IMAGE, png(16, 16, mode="RGB")))
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.images[0]" in violations(error)


async def test_the_per_request_cap_is_resource_exhausted_with_quota_failure(
    start_gateway: object,
) -> None:
    from gateway_support import detail
    from google.rpc import error_details_pb2

    gateway: Gateway = await start_gateway(max_request_bytes=100_000)  # type: ignore[operator]
    parameters = params_pb2.EditParameters(prompt="x", images=[params_pb2.FileInfo()])
    stream = edit_requests(parameters, chunks_of(IMAGE, png(256, 256, mode="RGB", noise=True)))
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert isinstance(detail(error, error_details_pb2.QuotaFailure), error_details_pb2.QuotaFailure)


async def test_variations_upload_one_square_png(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    data = png(64, 64, mode="RGB")
    parameters = params_pb2.VariationParameters(
        image=params_pb2.FileInfo(filename="in.png"),
        n=2,
        size="256x256",
        response_format=params_pb2.RESPONSE_FORMAT_B64_JSON,
    )
    requests = UploadStream(
        [
            pb.CreateImageVariationRequest(parameters=parameters),
            *(pb.CreateImageVariationRequest(chunk=c) for c in chunks_of(IMAGE, data)),
        ]
    )
    reply = await stub.CreateImageVariation(requests)
    (entry,) = emulator.journal.by_path("/v1/images/variations")
    assert [(f.field, f.filename) for f in entry.files] == [("image", "in.png")]
    assert dict(entry.form) == {
        "model": "dall-e-2",
        "n": "2",
        "size": "256x256",
        "response_format": "b64_json",
    }
    assert len(reply.result.images) == 2
    for image in reply.result.images:
        assert Image.open(io.BytesIO(image.data)).size == (256, 256)

    streamed = UploadStream(
        [
            pb.CreateImageVariationStreamRequest(parameters=parameters),
            *(pb.CreateImageVariationStreamRequest(chunk=c) for c in chunks_of(IMAGE, data)),
        ]
    )
    finals, partials, result = assemble(
        [event async for event in stub.CreateImageVariationStream(streamed)]
    )
    assert sorted(finals) == [0, 1] and partials == {} and len(result.images) == 2


@pytest.mark.parametrize(
    ("parameters", "chunks", "field"),
    [
        (params_pb2.EditParameters(prompt="x", model="gpt-image-9"), [], "parameters.images"),
        (
            params_pb2.EditParameters(
                prompt="x",
                model="gpt-image-9",
                images=[params_pb2.FileInfo(content_type="image/png")],
            ),
            [params_pb2.FileChunk(role=IMAGE, data=b"%PDF-1.7 not an image")],
            "parameters.images[0]",
        ),
        (
            params_pb2.EditParameters(
                prompt="x",
                model="gpt-image-9",
                images=[params_pb2.FileInfo()],
                mask=params_pb2.FileInfo(),
            ),
            [
                *chunks_of(IMAGE, png(16, 16, mode="RGB")),
                params_pb2.FileChunk(role=MASK, data=b"plain text"),
            ],
            "parameters.mask",
        ),
    ],
    ids=["no-image", "not-an-image", "mask-not-an-image"],
)
async def test_unknown_models_still_get_the_file_checks(
    gateway: Gateway,
    emulator: Emulator,
    parameters: params_pb2.EditParameters,
    chunks: list[params_pb2.FileChunk],
    field: str,
) -> None:
    # Unknown models skip the per-model rules, not the checks every model needs.
    error = await rejected_upload(gateway, "CreateImageEdit", edit_requests(parameters, chunks))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error)
    assert emulator.journal.by_path(EDITS) == []


async def test_unknown_models_get_variation_file_checks(
    gateway: Gateway, emulator: Emulator
) -> None:
    parameters = params_pb2.VariationParameters(model="dall-e-9", image=params_pb2.FileInfo())
    requests = UploadStream(
        [
            pb.CreateImageVariationRequest(parameters=parameters),
            pb.CreateImageVariationRequest(
                chunk=params_pb2.FileChunk(role=IMAGE, data=b"GIF89 almost")
            ),
        ]
    )
    error = await rejected_upload(gateway, "CreateImageVariation", requests)
    assert "parameters.image" in violations(error)
    assert emulator.journal.entries == []


async def test_edit_stream_relays_partial_images(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    source = png(64, 64, mode="RGB")
    parameters = params_pb2.EditParameters(
        prompt="add a hat", model="gpt-image-2", images=[params_pb2.FileInfo()], partial_images=2
    )
    call = stub.CreateImageEditStream(
        edit_requests(parameters, chunks_of(IMAGE, source), pb.CreateImageEditStreamRequest)
    )
    finals, partials, result = assemble([event async for event in call])
    assert sorted(partials) == [(0, 0), (0, 1)] and sorted(finals) == [0]
    assert all(data.startswith(b"\x89PNG") for data in partials.values())
    (entry,) = emulator.journal.by_path(EDITS)
    assert entry.form_values("stream") == ["true"] and entry.form_values("partial_images") == ["2"]
    assert len(result.images) == 1


async def test_edit_parameters_reach_openai_as_multipart_fields(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    source = png(64, 64, mode="RGB")
    parameters = params_pb2.EditParameters(
        prompt="add a hat",
        model="gpt-image-2",
        images=[params_pb2.FileInfo()],
        background=params_pb2.BACKGROUND_TRANSPARENT,
        quality=params_pb2.QUALITY_HIGH,
        size="1024x1536",
        output_format=params_pb2.OUTPUT_FORMAT_WEBP,
    )
    await stub.CreateImageEdit(edit_requests(parameters, chunks_of(IMAGE, source)))
    (entry,) = emulator.journal.by_path(EDITS)
    assert {name: entry.form_values(name) for name in ("background", "quality", "size")} == {
        "background": ["transparent"],
        "quality": ["high"],
        "size": ["1024x1536"],
    }
    assert entry.form_values("output_format") == ["webp"]


async def test_svg_options_flatten_and_markup_travels_as_a_file(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    source, markup = png(64, 64, mode="RGB"), png(64, 64, (200, 30, 30, 0))
    parameters = params_pb2.EditParameters(
        prompt="trace it",
        model="gpt-image-2.5-flare",
        images=[params_pb2.FileInfo()],
        markup=params_pb2.FileInfo(filename="markup.png"),
        output_format=params_pb2.OUTPUT_FORMAT_SVG,
    )
    parameters.svg.model = "svg-author-1"
    parameters.svg.reasoning.effort = params_pb2.SVG_REASONING_EFFORT_LOW
    chunks = [*chunks_of(IMAGE, source), *chunks_of(params_pb2.FILE_ROLE_MARKUP, markup)]
    await stub.CreateImageEdit(edit_requests(parameters, chunks))
    (entry,) = emulator.journal.by_path(EDITS)
    assert entry.form_values("svg[model]") == ["svg-author-1"]
    assert entry.form_values("svg[reasoning][effort]") == ["low"]
    assert entry.form_values("output_format") == ["svg"]
    assert [(f.field, f.sha256) for f in entry.files if f.field == "markup"] == [
        ("markup", hashlib.sha256(markup).hexdigest())
    ]


async def test_gif_frame_count_reaches_openai(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    parameters = params_pb2.EditParameters(
        prompt="make it wave",
        model="gpt-image-2.5-flare",
        images=[params_pb2.FileInfo()],
        output_format=params_pb2.OUTPUT_FORMAT_GIF,
        frame_count=3,
    )
    reply = await stub.CreateImageEdit(
        edit_requests(parameters, chunks_of(IMAGE, png(64, 64, mode="RGB")))
    )
    (entry,) = emulator.journal.by_path(EDITS)
    assert entry.form_values("frame_count") == ["3"]
    assert reply.result.images[0].data.startswith(b"GIF8")


@pytest.mark.parametrize("window", [0, 64 * 1024], ids=["bdp-probing", "fixed-64k"])
async def test_a_multi_mib_upload_arrives_whole_whatever_the_receive_window(
    emulator: Emulator, start_gateway: object, window: int
) -> None:
    gateway: Gateway = await start_gateway(receive_window_bytes=window)  # type: ignore[operator]
    source = png(1200, 1200, mode="RGB", noise=True)  # about 4 MiB, 66 chunks
    parameters = params_pb2.EditParameters(
        prompt="x",
        model="gpt-image-2",
        output_format=params_pb2.OUTPUT_FORMAT_JPEG,
        images=[params_pb2.FileInfo(filename="big.png", size_bytes=len(source))],
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        client = images_service_pb2_grpc.ImagesServiceStub(channel)
        reply = await client.CreateImageEdit(edit_requests(parameters, chunks_of(IMAGE, source)))
    assert reply.result.images[0].data
    (entry,) = emulator.journal.by_path(EDITS)
    assert [f.sha256 for f in entry.files] == [hashlib.sha256(source).hexdigest()]


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-9-preview"])
async def test_a_file_of_the_wrong_type_fails_at_the_chunk_that_shows_it(
    gateway: Gateway, emulator: Emulator, model: str
) -> None:
    # 20 MiB of text in 320 chunks: its first bytes already say it is no image.
    parameters = params_pb2.EditParameters(
        prompt="x", model=model, images=[params_pb2.FileInfo(filename="notes.png")]
    )
    piece = params_pb2.FileChunk(role=IMAGE, data=b"plain text, not an image\n" * 2600)
    stream = edit_requests(parameters, [piece] * 320)
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.images[0]" in violations(error)
    # Allow for gRPC's flow-control window, not for the 20 MiB.
    assert stream.pulled < 40, stream.pulled
    assert emulator.journal.by_path(EDITS) == []


async def test_a_mask_that_is_no_png_fails_at_its_first_chunk(
    gateway: Gateway, emulator: Emulator
) -> None:
    image = png(64, 64, mode="RGB")
    parameters = params_pb2.EditParameters(
        prompt="x",
        model="gpt-image-2",
        images=[params_pb2.FileInfo()],
        mask=params_pb2.FileInfo(),
    )
    jpeg_head = params_pb2.FileChunk(role=MASK, data=b"\xff\xd8\xff\xe0" + bytes(64 * 1024))
    filler = params_pb2.FileChunk(role=MASK, data=bytes(64 * 1024))
    stream = edit_requests(parameters, [*chunks_of(IMAGE, image), jpeg_head, *[filler] * 60])
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert "parameters.mask" in violations(error)
    assert stream.pulled < 40, stream.pulled


async def test_an_accepted_upload_gets_the_go_ahead_header_and_a_refused_one_does_not(
    gateway: Gateway,
) -> None:
    # Clients send their file chunks on this header (params.proto, FileChunk): a
    # refusal's trailers-only answer must not look like it.
    def headers(n: int) -> dict[str, str]:
        parameters = params_pb2.EditParameters(
            prompt="p", model="gpt-image-2", n=n, images=[params_pb2.FileInfo()]
        )
        with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = images_service_pb2_grpc.ImagesServiceStub(channel)
            call = stub.CreateImageEdit.future(
                iter(edit_requests(parameters, chunks_of(IMAGE, png(64, 64)))), timeout=60
            )
            with contextlib.suppress(grpc.RpcError):
                call.result()
            return dict(call.initial_metadata())

    # In a thread: the gateway serves from the test's event loop.
    accepted = await asyncio.to_thread(headers, 1)
    assert accepted["x-imagegate-upload"] == "accepted"
    refused = await asyncio.to_thread(headers, 99)  # over the model's largest n
    assert "x-imagegate-upload" not in refused
