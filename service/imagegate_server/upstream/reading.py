"""Reading an upstream's answer off the wire, within its bounds: a whole answer
before the call's deadline, or a stream's events as they arrive.

A connection that breaks or stalls while the answer is read is classified here
(:class:`UpstreamUnreachable`, :class:`UpstreamTimeout`), as possibly billed: the
request had reached the model. What the bytes mean is :mod:`.decoding`'s (a whole
answer) and :mod:`.events`' (a stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from imagegate_server.errors import UpstreamTimeout, UpstreamUnreachable
from imagegate_server.upstream.answers import ImageEvent, ImagesAnswer, ImageSink
from imagegate_server.upstream.bounds import AnswerBounds, bounded
from imagegate_server.upstream.decoding import AnswerReader, aligned_images
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.events import image_events


async def read_answer(
    response: httpx.Response,
    request_id: str | None,
    deadline: float,
    bounds: AnswerBounds,
    sink: ImageSink | None,
    upstream: str,
) -> ImagesAnswer:
    """The whole answer of ``upstream``; its images go to ``sink`` as they are decoded."""
    reader = AnswerReader(request_id, bounds.images, sink)
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in bounded(response.aiter_raw(), bounds.body_bytes, request_id):
                reader.feed(chunk)
                if sink is not None:
                    await sink.drain()
    except TimeoutError:
        raise UpstreamTimeout(
            "the upstream did not finish in time", request_id, may_have_billed=True
        ) from None
    except httpx.TransportError:
        raise UpstreamUnreachable(
            "the upstream connection broke", request_id, may_have_billed=True
        ) from None
    payload, images = reader.finish()
    aligned = aligned_images(payload, images, request_id, bounds.final_images)
    return ImagesAnswer(payload, aligned, request_id, upstream)


async def read_events(
    response: httpx.Response,
    request_id: str | None,
    errors: ErrorDecoder,
    bounds: AnswerBounds,
) -> AsyncIterator[ImageEvent]:
    """A streamed answer's events, as they arrive (an error event raises)."""
    body = bounded(response.aiter_raw(), bounds.body_bytes, request_id)
    try:
        async for event in image_events(body, request_id, errors, bounds):
            yield event
    except httpx.TimeoutException:
        raise UpstreamTimeout(
            "the upstream stream stalled", request_id, may_have_billed=True
        ) from None
    except httpx.TransportError:
        raise UpstreamUnreachable(
            "the upstream stream broke", request_id, may_have_billed=True
        ) from None
