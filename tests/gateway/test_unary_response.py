"""The unary response's bytes, joined straight from the decoded images, are the
message the ordinary way (set each image's data, serialize) would have sent."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.gateway.mapping.unary import unary_response_bytes

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
