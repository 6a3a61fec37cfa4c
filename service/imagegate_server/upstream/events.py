"""A streamed answer's SSE events into :class:`ImageEvent`, errors into exceptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from imagegate_server.errors import UpstreamProtocolError
from imagegate_server.upstream.answers import ImageEvent
from imagegate_server.upstream.decoding import decode_b64
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.sse import ServerSentEvent


async def image_events(
    events: AsyncIterator[ServerSentEvent], request_id: str | None, errors: ErrorDecoder
) -> AsyncIterator[ImageEvent]:
    """Partial and completed images in arrival order; an error event raises its
    :class:`UpstreamError`. Events of other kinds (none today) are skipped, so a new
    kind of progress event from OpenAI does not break streams."""
    async for event in events:
        payload = _payload(event.data, request_id)
        kind = str(payload.get("type") or event.event)
        if kind == "error" or "error" in payload:
            raise errors.from_event(payload, request_id)
        partial = kind.endswith(".partial_image")
        if partial or kind.endswith(".completed"):
            image = decode_b64(payload.get("b64_json"), request_id)
            payload["b64_json"] = ""
            yield ImageEvent(partial=partial, payload=payload, image=image)


def _payload(data: str, request_id: str | None) -> dict[str, Any]:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the upstream sent an invalid event", request_id) from None
    if not isinstance(payload, dict):
        raise UpstreamProtocolError("the upstream sent an invalid event", request_id)
    return payload
