"""A streamed answer's SSE events into :class:`ImageEvent`, errors into exceptions."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from imagegate_server.errors import UpstreamProtocolError
from imagegate_server.upstream.answers import ImageEvent
from imagegate_server.upstream.decoding import AnswerReader
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.sse import iter_events


async def image_events(
    body: AsyncIterable[bytes], request_id: str | None, errors: ErrorDecoder
) -> AsyncIterator[ImageEvent]:
    """Partial and completed images of a stream's body, in arrival order; an error
    event raises its :class:`UpstreamError`. Events of other kinds (none today) are
    skipped, so a new kind of progress event from OpenAI does not break streams.

    Each event's data is read as it arrives (:class:`AnswerReader`): its image is
    decoded from the base64 bytes, and only the rest of its JSON is parsed.
    """
    async for name, reader in iter_events(body, lambda: AnswerReader(request_id)):
        payload, images = reader.finish()
        kind = str(payload.get("type") or name)
        if kind == "error" or "error" in payload:
            raise errors.from_event(payload, request_id)
        partial = kind.endswith(".partial_image")
        if partial or kind.endswith(".completed"):
            image = _image(payload, images, request_id)
            yield ImageEvent(partial=partial, payload=payload, image=image)


def _image(payload: dict[str, Any], images: list[bytes], request_id: str | None) -> bytes:
    """The event's one image: its ``b64_json``, emptied in ``payload`` as it was read."""
    if payload.get("b64_json") != "" or not images:
        raise UpstreamProtocolError("the upstream sent an image without data", request_id)
    if len(images) > 1:
        raise UpstreamProtocolError("the upstream sent more than one image in an event", request_id)
    return images[0]
