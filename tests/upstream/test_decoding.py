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

from imagegate_server.errors import AnswerFault, UpstreamProtocolError
from imagegate_server.upstream.bounds import ImageLimits
from imagegate_server.upstream.decoding import AnswerReader

PNG = b"\x89PNG\r\n\x1a\n"
# Room for every image these tests decode: the limits have tests of their own below.
ROOMY = ImageLimits(
    max_bytes=8_000_000, max_images=10, formats=frozenset({"png"}), max_json_bytes=100_000
)


def read(
    body: bytes, cuts: list[int], limits: ImageLimits = ROOMY
) -> tuple[dict[str, object], list[bytes]]:
    reader = AnswerReader("req_1", limits)
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
    images = [PNG + image for image in images]
    body = answer(images, usage={"input_tokens": 3, "note": '"b64_json": "not an image"'})
    payload, decoded = read(body, cuts)
    assert decoded == images
    assert [item["b64_json"] for item in payload["data"]] == [""] * len(images)  # type: ignore[index,union-attr]
    assert payload["usage"] == {"input_tokens": 3, "note": '"b64_json": "not an image"'}
    assert [item["revised_prompt"] for item in payload["data"]] == ["a b64_json"] * len(images)  # type: ignore[index,union-attr]


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20))
def test_an_escaped_solidus_in_image_data_is_a_solidus(cuts: list[int]) -> None:
    image = PNG + bytes(range(256)) * 2  # its base64 has '/' in it
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
        b'{"data": [{"b64_json": "iVBORw0KGgoA',  # cut off mid-image
        b'{"data": [{"b64_json": "iVBORw0KGgoA"}',  # cut off after it
        b"[1, 2]",
    ],
)
def test_a_broken_answer_is_an_upstream_protocol_error(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        read(body, [7, 19])


def test_a_large_image_is_decoded_from_its_chunks() -> None:
    image = PNG + os.urandom(3_000_000)
    body = answer([image, image[:10]])
    _, decoded = read(body, list(range(0, len(body), 65536)))
    assert decoded == [image, image[:10]]


def _fault(body: bytes, limits: ImageLimits, cuts: list[int] | None = None) -> AnswerFault:
    with pytest.raises(UpstreamProtocolError) as caught:
        read(body, cuts or list(range(0, len(body), 65536)), limits)
    assert caught.value.request_id == "req_1" and caught.value.may_have_billed
    return caught.value.fault


@pytest.mark.parametrize("cuts", [[], list(range(0, 3_000_000, 4093))])
def test_an_image_larger_than_the_request_allows_is_refused_while_it_is_read(
    cuts: list[int],
) -> None:
    limits = ImageLimits(
        max_bytes=1_000_000, max_images=1, formats=frozenset({"png"}), max_json_bytes=100_000
    )
    assert read(answer([PNG + bytes(1_000_000 - len(PNG))]), cuts, limits)[1]
    assert _fault(answer([PNG + bytes(1_000_000)]), limits, cuts) is AnswerFault.TOO_LARGE


def test_more_images_than_asked_for_are_refused() -> None:
    limits = ImageLimits(
        max_bytes=100, max_images=2, formats=frozenset({"png"}), max_json_bytes=100_000
    )
    assert len(read(answer([PNG, PNG]), [], limits)[1]) == 2
    assert _fault(answer([PNG, PNG, PNG]), limits) is AnswerFault.TOO_LARGE


@pytest.mark.parametrize(
    ("image", "formats"),
    [
        (bytes(300), frozenset({"png"})),  # zeros: no image at all
        (b"", frozenset({"png"})),
        (PNG + bytes(10), frozenset({"jpeg"})),  # a PNG where JPEG was asked for
        (b"GIF89a" + bytes(10), frozenset({"png", "webp"})),
        (b"not <svg", frozenset({"svg"})),
    ],
)
def test_an_image_not_in_the_format_asked_for_is_refused(
    image: bytes, formats: frozenset[str]
) -> None:
    limits = ImageLimits(max_bytes=1000, max_images=1, formats=formats, max_json_bytes=100_000)
    assert _fault(answer([image]), limits) is AnswerFault.BAD_IMAGE


@pytest.mark.parametrize(
    ("image", "fmt"),
    [
        (PNG + bytes(10), "png"),
        (b"\xff\xd8\xff\xe0" + bytes(10), "jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(10), "webp"),
        (b"GIF89a" + bytes(10), "gif"),
        (b'\xef\xbb\xbf\n  <svg xmlns="http://www.w3.org/2000/svg"/>', "svg"),
    ],
)
def test_an_image_in_the_format_asked_for_is_taken(image: bytes, fmt: str) -> None:
    limits = ImageLimits(
        max_bytes=1000, max_images=1, formats=frozenset({fmt}), max_json_bytes=100_000
    )
    assert read(answer([image]), [3, 50], limits)[1] == [image]


def test_json_beyond_what_the_images_need_is_refused() -> None:
    # A 16 MiB skeleton of small numbers once parsed into ~70 MB of Python objects.
    limits = ImageLimits(
        max_bytes=100, max_images=1, formats=frozenset({"png"}), max_json_bytes=5000
    )
    assert read(answer([PNG], filler=[0] * 300), [], limits)[1] == [PNG]
    assert _fault(answer([PNG], filler=[0] * 2000), limits) is AnswerFault.TOO_LARGE


class RecordingSink:
    """An ImageSink that keeps what it was given, in the order it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def begin(self, image_format: str) -> None:
        self.events.append(("begin", image_format))

    def write(self, piece: bytes) -> None:
        self.events.append(("write", piece))

    def end(self) -> None:
        self.events.append(("end", None))

    async def drain(self) -> None:
        pass

    def images(self) -> list[bytes]:
        images: list[bytes] = []
        for kind, value in self.events:
            if kind == "begin":
                images.append(b"")
            elif kind == "write":
                assert isinstance(value, bytes)
                images[-1] += value
        return images


@settings(max_examples=200, deadline=None)
@given(
    images=st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30),
)
def test_with_a_sink_the_images_go_to_it_and_the_answer_keeps_none(
    images: list[bytes], cuts: list[int]
) -> None:
    images = [PNG + image for image in images]
    body = answer(images, usage={"input_tokens": 3})
    sink = RecordingSink()
    reader = AnswerReader("req_1", ROOMY, sink)
    points = sorted({min(max(c, 0), len(body)) for c in cuts} | {0, len(body)})
    for start, end in itertools.pairwise(points):
        reader.feed(body[start:end])
    payload, decoded = reader.finish()
    assert decoded == [b""] * len(images)  # SUNK: nothing of them kept
    assert sink.images() == images
    kinds = [kind for kind, _ in sink.events]
    assert kinds.count("begin") == kinds.count("end") == len(images)
    assert [value for kind, value in sink.events if kind == "begin"] == ["png"] * len(images)
    assert payload["usage"] == {"input_tokens": 3}


def test_an_image_in_another_format_never_reaches_the_sink() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(5000)
    sink = RecordingSink()
    reader = AnswerReader("req_1", ROOMY, sink)
    body = answer([PNG + bytes(100), jpeg])
    with pytest.raises(UpstreamProtocolError) as raised:
        reader.feed(body)
    assert raised.value.fault is AnswerFault.BAD_IMAGE
    # The PNG went through; of the JPEG, not a byte (its first bytes told its format).
    assert sink.images() == [PNG + bytes(100)]
    assert [kind for kind, _ in sink.events].count("begin") == 1
