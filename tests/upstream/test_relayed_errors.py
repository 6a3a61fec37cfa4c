"""What an upstream error puts into the caller's status is bounded, whatever it sent.

A status travels in trailing metadata, which gRPC clients cap (8 KiB soft, 16 KiB
hard in most): an upstream ``code`` and ``param`` of 5,000 characters once made 22 KB
of details, and a default client saw its own RESOURCE_EXHAUSTED instead. Here any
error (an HTTP answer or an SSE error event, fields of any length and alphabet, any
request id) gives a status whose metadata, with the message as gRPC percent-encodes
it (up to three bytes per byte), stays within 4 KiB.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate_server.gateway.edge.status import failure
from imagegate_server.upstream.errors import ErrorDecoder

KEY = "sk-relayed-errors-key"
texts = st.text(max_size=6000) | st.builds(
    lambda c, k: c * k, st.characters(), st.integers(0, 6000)
)
fields = st.fixed_dictionaries(
    {}, optional={"code": texts, "type": texts, "param": texts, "message": texts}
)
request_ids = st.text(max_size=9000) | st.builds(lambda k: "r" * k, st.integers(0, 9000))


def _metadata_bytes(trailers: tuple[tuple[str, str | bytes], ...], message: str) -> int:
    size = sum(len(key) + len(value) for key, value in trailers)
    return size + 3 * len(message.encode())


@settings(max_examples=300, deadline=None)
@given(error=fields, status=st.sampled_from([400, 401, 404, 429, 500]), request_id=request_ids)
def test_any_error_answer_gives_a_status_within_4_kib(
    error: dict[str, Any], status: int, request_id: str
) -> None:
    headers = {"x-request-id": request_id.encode("utf-8", "replace")}
    body = httpx.ByteStream(json.dumps({"error": error}).encode())
    response = httpx.Response(status, headers=headers, stream=body)
    decoded = asyncio.run(ErrorDecoder([KEY]).from_response(response))
    answer = failure(decoded)
    assert _metadata_bytes(answer.trailing_metadata, answer.message) <= 4096
    for key, value in answer.trailing_metadata:
        if isinstance(value, str):  # what gRPC can send as ASCII metadata
            assert value.isascii() and value.isprintable(), key


@settings(max_examples=300, deadline=None)
@given(error=fields, nested=st.booleans())
def test_any_error_event_gives_a_status_within_4_kib(error: dict[str, Any], nested: bool) -> None:
    payload = {"error": error} if nested else {"type": "error", **error}
    answer = failure(ErrorDecoder([KEY]).from_event(payload, "req_" + "1" * 100))
    assert _metadata_bytes(answer.trailing_metadata, answer.message) <= 4096


def test_an_error_body_is_read_only_to_its_cap() -> None:
    body = json.dumps({"error": {"code": "c", "message": "m" * 100_000}}).encode()

    async def chunks() -> Any:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]
        raise AssertionError("read past the cap")

    response = httpx.Response(500, content=chunks())
    error = asyncio.run(ErrorDecoder([KEY], max_body_bytes=4096).from_response(response))
    # Cut JSON does not parse: the status stands alone.
    assert error.code is None and error.message == "the upstream answered HTTP 500"
    small = json.dumps({"error": {"code": "c" * 100, "message": "m"}}).encode()
    error = asyncio.run(
        ErrorDecoder([KEY], max_body_bytes=4096).from_response(
            httpx.Response(400, stream=httpx.ByteStream(small))
        )
    )
    assert error.code == "c" * 64  # a field past 64 bytes is cut
