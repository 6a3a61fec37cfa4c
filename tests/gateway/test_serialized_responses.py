"""Responses joined straight from the decoded images (a unary result, a stream's image
slice) are the messages the ordinary way (set each image's data, serialize) would
have sent."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.gateway.mapping.results import slices
from imagegate_server.gateway.mapping.serialized import chunk_response_bytes, unary_response_bytes

RESPONSES = [pb.CreateImageResponse, pb.CreateImageEditResponse, pb.CreateImageVariationResponse]

# An image: its bytes (None: a URL instead; b"" is an image of no bytes, present all
# the same), and its revised prompt if any. Sizes reach past one- and two-byte varints.
images = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=20_000)),
        st.one_of(st.none(), st.text(max_size=40)),
    ),
    max_size=5,
)


def result_without_bytes(
    spec: list[tuple[bytes | None, str | None]], created: int, size: str | None
) -> results_pb2.ImagesResult:
    result = results_pb2.ImagesResult(created=created, quality=params_pb2.QUALITY_HIGH)
    if size is not None:
        result.size = size
    result.usage.input_tokens, result.usage.output_tokens = 12, 4160
    result.cost.usd_micros, result.cost.price_table = 11090, "2026-12-01"
    for data, revised in spec:
        image = result.images.add()
        if data is None:
            image.url = "https://example.invalid/image.png"
        if revised is not None:
            image.revised_prompt = revised
    return result


def ordinary(
    response_type: type[Message],
    result: results_pb2.ImagesResult,
    spec: list[tuple[bytes | None, str | None]],
) -> Message:
    whole = results_pb2.ImagesResult()
    whole.CopyFrom(result)
    for image, (data, _) in zip(whole.images, spec, strict=True):
        if data is not None:
            image.data = data
    return response_type(result=whole)


@pytest.mark.parametrize("response_type", RESPONSES)
@settings(max_examples=60, deadline=None)
@given(
    spec=images,
    created=st.integers(0, 2**40),
    size=st.one_of(st.none(), st.sampled_from(["1024x1024", ""])),
)
def test_the_joined_bytes_parse_to_the_ordinary_message(
    response_type: type[Message],
    spec: list[tuple[bytes | None, str | None]],
    created: int,
    size: str | None,
) -> None:
    result = result_without_bytes(spec, created, size)
    data = unary_response_bytes(response_type, result, [data for data, _ in spec])
    expected = ordinary(response_type, result, spec)
    parsed = response_type.FromString(data)
    assert parsed == expected
    assert len(data) == expected.ByteSize()
    # Which of the oneof is set survives too (an empty image is data, not nothing).
    for image, (image_data, _) in zip(parsed.result.images, spec, strict=True):  # type: ignore[attr-defined]
        assert image.WhichOneof("content") == ("url" if image_data is None else "data")


def test_a_large_image_is_its_bytes_exactly() -> None:
    big = bytes(range(256)) * 40_000  # 10 MB: a four-byte varint length
    result = result_without_bytes([(big, None)], 1, "1536x1024")
    data = unary_response_bytes(pb.CreateImageResponse, result, [big])
    assert pb.CreateImageResponse.FromString(data).result.images[0].data == big


STREAM_RESPONSES = [
    pb.CreateImageStreamResponse,
    pb.CreateImageEditStreamResponse,
    pb.CreateImageVariationStreamResponse,
]


@pytest.mark.parametrize("response_type", STREAM_RESPONSES)
@settings(max_examples=60, deadline=None)
@given(
    image=st.binary(max_size=5_000),
    chunk_bytes=st.integers(1, 2_000),
    image_index=st.integers(0, 9),
    partial_image_index=st.one_of(st.none(), st.integers(0, 3)),
)
def test_each_joined_slice_parses_to_the_ordinary_chunk_message(
    response_type: type[Message],
    image: bytes,
    chunk_bytes: int,
    image_index: int,
    partial_image_index: int | None,
) -> None:
    received = bytearray()
    pieces = list(slices(image, chunk_bytes, image_index, partial_image_index))
    for piece in pieces:
        data = chunk_response_bytes(response_type, piece)
        chunk = results_pb2.ImageChunk()
        chunk.CopyFrom(piece.head)
        chunk.data = bytes(piece.data)
        expected = response_type(image_chunk=chunk)
        assert response_type.FromString(data) == expected
        assert len(data) == expected.ByteSize()
        received += expected.image_chunk.data  # type: ignore[attr-defined]
    assert bytes(received) == image
    assert [p.head.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert [p.head.offset for p in pieces] == list(range(0, max(len(image), 1), chunk_bytes))
