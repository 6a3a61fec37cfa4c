"""Reading an ImagesResponse as it arrives: the images decoded, the rest parsed, for
any way the body is cut into chunks."""

from __future__ import annotations

import base64
import itertools
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate_server.errors import UpstreamProtocolError
from imagegate_server.upstream.decoding import AnswerReader


def read(body: bytes, cuts: list[int]) -> tuple[dict[str, object], list[bytes]]:
    reader = AnswerReader("req_1")
    points = sorted({min(max(c, 0), len(body)) for c in cuts} | {0, len(body)})
    for start, end in itertools.pairwise(points):
        reader.feed(body[start:end])
    return reader.finish()


def answer(images: list[bytes], **extra: object) -> bytes:
    data = [
        {"b64_json": base64.b64encode(image).decode(), "revised_prompt": "a b64_json"}
        for image in images
    ]
    return json.dumps({"created": 1, "data": data, **extra}, indent=1).encode()


@settings(max_examples=200, deadline=None)
@given(
    images=st.lists(st.binary(min_size=0, max_size=3000), min_size=0, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30),
)
def test_any_chunking_gives_the_images_and_the_rest_of_the_document(
    images: list[bytes], cuts: list[int]
) -> None:
    body = answer(images, usage={"input_tokens": 3, "note": '"b64_json": "not an image"'})
    payload, decoded = read(body, cuts)
    assert decoded == images
    assert [item["b64_json"] for item in payload["data"]] == [""] * len(images)  # type: ignore[index,union-attr]
    assert payload["usage"] == {"input_tokens": 3, "note": '"b64_json": "not an image"'}
    assert [item["revised_prompt"] for item in payload["data"]] == ["a b64_json"] * len(images)  # type: ignore[index,union-attr]


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20))
def test_an_escaped_solidus_in_image_data_is_a_solidus(cuts: list[int]) -> None:
    image = bytes(range(256)) * 2  # its base64 has '/' in it
    encoded = base64.b64encode(image).decode().replace("/", "\\/")
    body = ('{"data": [{"b64_json": "' + encoded + '"}]}').encode()
    _, decoded = read(body, cuts)
    assert decoded == [image]


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"b64_json": "AA!A"}]}',  # not base64
        b'{"data": [{"b64_json": "AAA"}]}',  # not a whole group
        b'{"data": [{"b64_json": "AA\\u0041A"}]}',  # an escape base64 never needs
        b'{"data": [{"b64_json": "AAAA',  # cut off mid-image
        b'{"data": [{"b64_json": "AAAA"}',  # cut off after it
        b"[1, 2]",
    ],
)
def test_a_broken_answer_is_an_upstream_protocol_error(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        read(body, [7, 19])


def test_a_large_image_is_decoded_from_its_chunks() -> None:
    image = os.urandom(3_000_000)
    body = answer([image, image[:10]])
    _, decoded = read(body, list(range(0, len(body), 65536)))
    assert decoded == [image, image[:10]]
