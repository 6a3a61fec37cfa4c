"""A reply, whole or streamed, into what a stream RPC sends: slices, then the result.

A whole answer (OpenAI could not stream the call) becomes each image's slices, then
the result. Streamed events become each partial image's slices as it arrives, each
completed image's slices, and finally the result built from the completed events'
metadata. OpenAI's completed events carry no image index: images are numbered in
the order they complete. Each completed event carries the usage of its own image's
generation; the result carries the whole call's (input counted once, outputs
summed), which is what the call is priced by.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from imagegate.v1 import results_pb2

from imagegate_server.errors import UpstreamProtocolError
from imagegate_server.gateway.mapping.cost import set_usage, usage_of
from imagegate_server.gateway.mapping.results import (
    ImageSlice,
    apply_metadata,
    images_result,
    slices,
)
from imagegate_server.pricing import TokenUsage, combine_streamed
from imagegate_server.upstream import ImageEvents, ImagesAnswer, Reply

StreamItem = ImageSlice | results_pb2.ImagesResult


async def stream_items(reply: Reply, chunk_bytes: int) -> AsyncIterator[StreamItem]:
    if isinstance(reply, ImagesAnswer):
        result = images_result(reply)
        for index, data in enumerate(reply.images):
            if data is not None:  # None: a URL result, carried in the result
                for chunk in slices(data, chunk_bytes, index):
                    yield chunk
        yield result
        return
    async for item in _from_events(reply, chunk_bytes):
        yield item


async def _from_events(reply: ImageEvents, chunk_bytes: int) -> AsyncIterator[StreamItem]:
    result = results_pb2.ImagesResult()
    usages: list[TokenUsage] = []
    finished = 0
    async for event in reply:
        payload, data = event.payload, event.image
        if event.partial:
            partial = payload.get("partial_image_index")
            partial = partial if isinstance(partial, int) and partial >= 0 else 0
            for chunk in slices(data, chunk_bytes, finished, partial):
                yield chunk
            continue
        created = payload.get("created_at")
        if not result.created and isinstance(created, int):
            result.created = created
        apply_metadata(result, payload)
        usage = usage_of(result) if "usage" in payload else None
        if usage is not None:
            usages.append(usage)
        result.images.add()
        for chunk in slices(data, chunk_bytes, finished):
            yield chunk
        finished += 1
    if not finished:
        raise UpstreamProtocolError("the upstream stream ended without an image")
    combined = combine_streamed(usages)
    if combined is not None:
        set_usage(result, combined)
    yield result
