"""A reply, whole or streamed, into what a stream RPC sends: slices, then the result.

A whole answer (OpenAI could not stream the call) becomes each image's slices, then
the result. Streamed events become each partial image's slices as it arrives, each
completed image's slices, and finally the result built from the completed events'
metadata. OpenAI's completed events carry no image index: images are numbered in
the order they complete. Each completed event carries the usage of its own image's
generation; they are handed on with the result (:class:`Finished`), to be judged and
combined into the whole call's (input counted once, outputs summed), which is what
the call is priced by.

With a :class:`~.stored.StoredDelivery` the final images are not sliced: a whole
answer's went to the store through its sink as they were decoded, a streamed
answer's go there as each completed event arrives, and the result carries them as
``stored`` (partial images are still sliced).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from imagegate.v1 import results_pb2

from imagegate_server.errors import AnswerFault, UpstreamProtocolError
from imagegate_server.gateway.mapping.results import (
    Finished,
    ImageSlice,
    apply_metadata,
    images_result,
    partial_index,
    set_created,
    slices,
)
from imagegate_server.gateway.mapping.stored import StoredDelivery, StoringSink, place, set_stored
from imagegate_server.upstream import ImageEvents, ImagesAnswer, Reply

MappedItem = ImageSlice | Finished


async def stream_items(
    reply: Reply,
    chunk_bytes: int,
    delivery: StoredDelivery | None = None,
    sink: StoringSink | None = None,
) -> AsyncIterator[MappedItem]:
    """``delivery``: the call stores its final images; ``sink``: where a whole
    answer's went (the upstream was given it)."""
    if isinstance(reply, ImagesAnswer):
        finished = images_result(reply)
        if sink is not None:
            place(finished.result, reply.images, await sink.stored())
        else:
            for index, data in enumerate(reply.images):
                if data is not None:  # None: a URL result, carried in the result
                    for chunk in slices(data, chunk_bytes, index):
                        yield chunk
        yield finished
        return
    async for item in _from_events(reply, chunk_bytes, delivery):
        yield item


async def _from_events(
    reply: ImageEvents, chunk_bytes: int, delivery: StoredDelivery | None
) -> AsyncIterator[MappedItem]:
    result = results_pb2.ImagesResult(upstream=reply.upstream)
    usages: list[object] = []
    finished = 0
    async for event in reply:
        payload, data = event.payload, event.image
        if event.partial:
            partial = partial_index(payload.get("partial_image_index"))
            for chunk in slices(data, chunk_bytes, finished, partial):
                yield chunk
            continue
        set_created(result, payload.get("created_at"))
        apply_metadata(result, payload)
        usages.append(payload.get("usage"))
        image = result.images.add()
        if delivery is not None:
            stored = await delivery.put_event_image(data)
            if stored is not None:  # None: the store failed (the call will say so)
                set_stored(image, stored)
        else:
            for chunk in slices(data, chunk_bytes, finished):
                yield chunk
        finished += 1
    if not finished:
        raise UpstreamProtocolError(
            "the upstream stream ended without an image", reply.request_id, AnswerFault.NO_IMAGES
        )
    yield Finished(result, tuple(usages))
