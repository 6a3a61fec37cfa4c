"""SSE framing as OpenAI streams it, read through httpx's line splitting."""

from __future__ import annotations

import httpx
import pytest

from imagegate_server.errors import UpstreamError, UpstreamErrorKind, UpstreamProtocolError
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.events import image_events
from imagegate_server.upstream.sse import ServerSentEvent, iter_events


async def events_of(body: bytes) -> list[ServerSentEvent]:
    response = httpx.Response(200, content=body)
    return [event async for event in iter_events(response.aiter_lines())]


async def test_events_are_split_on_blank_lines() -> None:
    body = b'event: a\ndata: {"x": 1}\n\nevent: b\ndata: {"x": 2}\n\n'
    assert await events_of(body) == [
        ServerSentEvent("a", '{"x": 1}'),
        ServerSentEvent("b", '{"x": 2}'),
    ]


async def test_multi_line_data_is_joined_with_newlines() -> None:
    body = b"event: a\ndata: first\ndata: second\ndata:third\n\n"
    assert await events_of(body) == [ServerSentEvent("a", "first\nsecond\nthird")]


async def test_comments_and_unknown_fields_are_ignored() -> None:
    body = b": keep-alive\nid: 7\nretry: 100\nevent: a\n: another\ndata: x\n\n"
    assert await events_of(body) == [ServerSentEvent("a", "x")]


async def test_a_last_event_without_its_blank_line_is_kept() -> None:
    assert await events_of(b"event: a\ndata: x\n\nevent: b\ndata: y") == [
        ServerSentEvent("a", "x"),
        ServerSentEvent("b", "y"),
    ]


@pytest.mark.parametrize("ending", [b"\r\n", b"\r", b"\n"])
async def test_every_line_ending_frames_alike(ending: bytes) -> None:
    body = ending.join([b"event: a", b"data: x", b"", b"data: y", b"", b""])
    assert await events_of(body) == [ServerSentEvent("a", "x"), ServerSentEvent("message", "y")]


async def test_events_without_data_are_not_events() -> None:
    assert await events_of(b"event: a\n\n\n\nevent: b\ndata: y\n\n") == [ServerSentEvent("b", "y")]


async def _decoded(body: bytes) -> list[tuple[bool, dict[str, object]]]:
    response = httpx.Response(200, content=body)
    events = image_events(iter_events(response.aiter_lines()), "req_1", ErrorDecoder(["sk-x"]))
    return [(event.partial, dict(event.payload)) async for event in events]


async def test_image_events_are_partial_or_completed_and_others_are_skipped() -> None:
    body = (
        b'event: image_generation.partial_image\ndata: {"type": "image_generation.partial_image",'
        b' "b64_json": "AA==", "partial_image_index": 0}\n\n'
        b'event: image_generation.in_progress\ndata: {"type": "image_generation.in_progress"}\n\n'
        b"event: image_edit.completed\n"
        b'data: {"type": "image_edit.completed", "b64_json": "AA=="}\n\n'
    )
    decoded = await _decoded(body)
    assert [partial for partial, _ in decoded] == [True, False]
    assert decoded[1][1]["type"] == "image_edit.completed"


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


async def test_an_event_that_is_not_a_json_object_is_a_protocol_error() -> None:
    for data in (b"not json", b"[1, 2]"):
        with pytest.raises(UpstreamProtocolError):
            await _decoded(b"event: image_generation.completed\ndata: " + data + b"\n\n")


async def test_only_one_space_after_the_colon_is_dropped_and_a_bare_name_is_empty() -> None:
    body = b"event:a\ndata:  two\ndata\ndata: \n\nevent\ndata:x\n\n"
    assert await events_of(body) == [
        ServerSentEvent("a", " two\n\n"),
        ServerSentEvent("message", "x"),
    ]
