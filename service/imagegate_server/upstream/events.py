"""A streamed answer's SSE events into :class:`ImageEvent`, errors into exceptions."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from imagegate_server.errors import AnswerFault, UpstreamProtocolError
from imagegate_server.upstream.answers import ImageEvent
from imagegate_server.upstream.bounds import AnswerBounds
from imagegate_server.upstream.decoding import AnswerReader
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.sse import iter_events


async def image_events(
    body: AsyncIterable[bytes],
    request_id: str | None,
    errors: ErrorDecoder,
    bounds: AnswerBounds,
) -> AsyncIterator[ImageEvent]:
    """Partial and completed images of a stream's body, in arrival order; an error
    event raises its :class:`UpstreamError`. Events of other kinds (none today) are
    skipped, so a new kind of progress event from OpenAI does not break streams.

    Each event's data is read as it arrives (:class:`AnswerReader`): its image is
    decoded from the base64 bytes and checked as a whole answer's images are (size,
    format), and only the rest of its JSON is parsed. More completed or partial
    images than the request asked for end the stream (``bounds``).
    """
    finished = partials = 0
    async for name, reader in iter_events(body, lambda: AnswerReader(request_id, bounds.event)):
        payload, images = reader.finish()
        kind = str(payload.get("type") or name)
        if kind == "error" or "error" in payload:
            raise errors.from_event(payload, request_id)
        partial = kind.endswith(".partial_image")
        if partial or kind.endswith(".completed"):
            image = _image(payload, images, request_id)
            if partial:
                partials += 1
            else:
                finished += 1
            if finished > bounds.final_images or partials > bounds.partial_images:
                raise UpstreamProtocolError(
                    "the upstream streamed more images than asked",
                    request_id,
                    AnswerFault.TOO_LARGE,
                )
            yield ImageEvent(partial=partial, payload=payload, image=image)


def _image(payload: dict[str, Any], images: list[bytes], request_id: str | None) -> bytes:
    """The event's one image: its ``b64_json``, emptied in ``payload`` as it was read."""
    if payload.get("b64_json") != "" or len(images) != 1:
        raise UpstreamProtocolError(
            "the upstream sent an image event without its image", request_id, AnswerFault.BAD_IMAGE
        )
    return images[0]
