"""SSE framing as OpenAI streams it, read from the body's bytes in any chunking, and
image events decoded from it."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate_server.errors import (
    AnswerFault,
    UpstreamError,
    UpstreamErrorKind,
    UpstreamProtocolError,
)
from imagegate_server.upstream.bounds import AnswerBounds, ImageLimits
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.events import image_events
from imagegate_server.upstream.sse import iter_events


class Collected:
    """A sink that keeps what it is fed."""

    def __init__(self) -> None:
        self.data = bytearray()

    def feed(self, data: bytes) -> None:
        self.data += data


async def chunks_of(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    points = sorted({min(max(c, 0), len(body)) for c in cuts} | {0, len(body)})
    for start, end in itertools.pairwise(points):
        yield body[start:end]


async def events_of(body: bytes, cuts: list[int] | None = None) -> list[tuple[str, bytes]]:
    """(event name, data) of each event, the body cut at ``cuts`` (default: every byte
    on its own, the hardest chunking for the framing)."""
    cut_at = list(range(len(body))) if cuts is None else cuts
    return [
        (name, bytes(sink.data))
        async for name, sink in iter_events(chunks_of(body, cut_at), Collected)
    ]


async def test_events_are_split_on_blank_lines() -> None:
    body = b'event: a\ndata: {"x": 1}\n\nevent: b\ndata: {"x": 2}\n\n'
    assert await events_of(body) == [("a", b'{"x": 1}'), ("b", b'{"x": 2}')]


async def test_multi_line_data_is_joined_with_newlines() -> None:
    body = b"event: a\ndata: first\ndata: second\ndata:third\n\n"
    assert await events_of(body) == [("a", b"first\nsecond\nthird")]


async def test_comments_and_unknown_fields_are_ignored() -> None:
    body = b": keep-alive\nid: 7\nretry: 100\nevent: a\n: another\ndata: x\n\n"
    assert await events_of(body) == [("a", b"x")]


async def test_a_last_event_without_its_blank_line_is_kept() -> None:
    assert await events_of(b"event: a\ndata: x\n\nevent: b\ndata: y") == [("a", b"x"), ("b", b"y")]


@pytest.mark.parametrize("ending", [b"\r\n", b"\r", b"\n"])
async def test_every_line_ending_frames_alike(ending: bytes) -> None:
    body = ending.join([b"event: a", b"data: x", b"", b"data: y", b"", b""])
    assert await events_of(body) == [("a", b"x"), ("message", b"y")]
    assert await events_of(body, []) == [("a", b"x"), ("message", b"y")]


async def test_events_without_data_are_not_events() -> None:
    assert await events_of(b"event: a\n\n\n\nevent: b\ndata: y\n\n") == [("b", b"y")]


async def test_only_one_space_after_the_colon_is_dropped_and_a_bare_name_is_empty() -> None:
    body = b"event:a\ndata:  two\ndata\ndata: \n\nevent\ndata:x\n\n"
    assert await events_of(body) == [("a", b" two\n\n"), ("message", b"x")]


async def test_a_field_name_longer_than_any_is_skipped_with_its_line() -> None:
    body = b"x" * 100 + b"data: not data\ndata: y\n\n"
    assert await events_of(body) == [("message", b"y")]


def _without_line_ends(value: bytes) -> bytes:
    return value.replace(b"\r", b"").replace(b"\n", b"")


_LINE = st.one_of(
    st.sampled_from([b"", b"data", b"event", b": comment", b"id: 3"]),
    st.binary(max_size=40).map(lambda v: b"data:" + _without_line_ends(v)),
    st.text("abc._ ", max_size=12).map(lambda v: b"event: " + v.encode()),
)


def reference(body: bytes) -> list[tuple[str, bytes]]:
    """The same rules, applied to a whole body at once."""
    events: list[tuple[str, bytes]] = []
    name, data = b"", None
    for line in re.split(rb"\r\n|\r|\n", body):
        if not line:
            if data is not None:
                events.append((name.decode() or "message", data))
            name, data = b"", None
            continue
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data = value if data is None else data + b"\n" + value
        elif field == b"event":
            name = value
    if data is not None:
        events.append((name.decode() or "message", data))
    return events


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_LINE, max_size=12),
    ending=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=20),
)
async def test_any_chunking_frames_as_the_rules_say(
    lines: list[bytes], ending: bytes, cuts: list[int]
) -> None:
    body = b"".join(line + ending for line in lines)
    assert await events_of(body, cuts) == reference(body)


def _event(kind: str, image: bytes | None = None, **fields: object) -> bytes:
    data: dict[str, object] = {"type": kind, **fields}
    if image is not None:
        data["b64_json"] = base64.b64encode(image).decode()
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


PNG = b"\x89PNG\r\n\x1a\n"


def png_bounds(body: int, image: int, final: int, partial: int) -> AnswerBounds:
    """Bounds of a PNG stream: ``final`` completed and ``partial`` partial images of at
    most ``image`` bytes each, ``body`` bytes in all."""
    return AnswerBounds(
        body_bytes=body,
        images=ImageLimits(image, final, frozenset({"png"}), 100_000),
        event=ImageLimits(image, 1, frozenset({"png"}), 100_000),
        final_images=final,
        partial_images=partial,
    )


ROOMY = png_bounds(100_000_000, 8_000_000, 4, 4)


async def _decoded(
    body: bytes, cuts: list[int] | None = None, bounds: AnswerBounds = ROOMY
) -> list[tuple[bool, dict[str, object], bytes]]:
    events = image_events(chunks_of(body, cuts or []), "req_1", ErrorDecoder(["sk-x"]), bounds)
    return [(event.partial, dict(event.payload), event.image) async for event in events]


async def test_image_events_are_partial_or_completed_and_others_are_skipped() -> None:
    body = (
        _event("image_generation.partial_image", PNG + b"\x00", partial_image_index=0)
        + _event("image_generation.in_progress")
        + _event("image_edit.completed", PNG + b"\x01\x02")
    )
    decoded = await _decoded(body)
    assert [(partial, image) for partial, _, image in decoded] == [
        (True, PNG + b"\x00"),
        (False, PNG + b"\x01\x02"),
    ]
    assert decoded[0][1] == {
        "type": "image_generation.partial_image",
        "b64_json": "",
        "partial_image_index": 0,
    }
    assert decoded[1][1]["type"] == "image_edit.completed"


async def test_large_images_are_decoded_whatever_the_chunks() -> None:
    first, second = PNG + os.urandom(2_000_000), PNG + os.urandom(1_500_000)
    body = _event("image_generation.partial_image", first, partial_image_index=0) + _event(
        "image_generation.completed", second, usage={"total_tokens": 5}
    )
    for size in (65536, 100_003, 262144):
        decoded = await _decoded(body, list(range(0, len(body), size)))
        assert [image for _, _, image in decoded] == [first, second]
        assert decoded[1][1]["usage"] == {"total_tokens": 5}


@pytest.mark.parametrize(
    "data",
    [
        b'{"type": "error", "code": "moderation_blocked", "message": "no, sk-x"}',
        b'{"error": {"type": "image_generation_user_error", "message": "no, sk-x"}}',
    ],
)
async def test_error_events_in_both_shapes_raise_their_classified_error(data: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        await _decoded(b"event: error\ndata: " + data + b"\n\n")
    error = caught.value
    assert error.kind is UpstreamErrorKind.INVALID_REQUEST
    assert error.status == 400
    assert error.request_id == "req_1"
    assert "sk-x" not in error.message


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "image_generation.completed"}',  # no image
        b'{"type": "image_generation.completed", "b64_json": null}',
        b'{"type": "image_generation.completed", "b64_json": "AA!A"}',  # not base64
        b'{"type": "image_generation.completed", "b64_json": "AAAA", "x": {"b64_json": "AAAA"}}',
    ],
)
async def test_an_event_without_one_good_image_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        await _decoded(b"event: image_generation.completed\ndata: " + data + b"\n\n")


@pytest.mark.parametrize(
    ("events", "fault"),
    [
        # an event's image past the bound: a 300 MB "image" of zeros once went through
        ([("image_generation.completed", PNG + bytes(1001))], AnswerFault.TOO_LARGE),
        ([("image_generation.completed", bytes(500))], AnswerFault.BAD_IMAGE),
        ([("image_generation.completed", PNG)] * 3, AnswerFault.TOO_LARGE),  # n=2
        ([("image_generation.partial_image", PNG)] * 2, AnswerFault.TOO_LARGE),  # 1 partial
    ],
)
async def test_streamed_images_are_checked_as_a_whole_answers_are(
    events: list[tuple[str, bytes]], fault: AnswerFault
) -> None:
    bounds = png_bounds(100_000, 1000, 2, 1)
    body = b"".join(_event(kind, image) for kind, image in events)
    with pytest.raises(UpstreamProtocolError) as caught:
        await _decoded(body, list(range(0, len(body), 7)), bounds)
    assert caught.value.fault is fault
