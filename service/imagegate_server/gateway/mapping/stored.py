"""Stored delivery (``DELIVERY_STORED``): each final image goes to the result store as
it is decoded, and the result carries a reference and a link instead of its bytes.

A whole answer's images come through a :class:`StoringSink` (the upstream's
``ImageSink``): each image's decoded pieces are queued to its own store write as
they are decoded, a call's images are written one at a time
(:data:`WRITES_AT_ONCE`), and the answer's reading waits while more than
:data:`QUEUED_BYTES` wait to be taken by a write (backpressure down to the
upstream's socket). A streamed
answer's final images are stored one by one as their events arrive
(:meth:`StoredDelivery.put`), from the event's decoded bytes. Memory per call: the
queue, plus what each write holds (a chunk on disk, at most a part on S3); never
the whole answer.

A store that fails does not stop the answer's reading: the rest is read and
dropped, so the call is priced by its usage (OpenAI billed it); then the call
fails (:meth:`StoredDelivery.check`), and leaving the :class:`StoredDelivery`'s
block with an error deletes what it had stored: nothing of a failed call is
reported as OK, and nothing of it is left to count against its client's quota.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType

from imagegate.v1 import results_pb2

from imagegate_server.errors import StoreUnavailable
from imagegate_server.imageformat import CONTENT_TYPES
from imagegate_server.store import CallInfo, ResultStore, StoredImage
from imagegate_server.store.backend import Source
from imagegate_server.upstream.bounds import image_format

log = logging.getLogger(__name__)

MIB = 1024 * 1024
QUEUED_BYTES = 4 * MIB
"""Decoded bytes of one call waiting for their store write before the answer's
reading pauses: a few HTTP chunks' worth ahead of the store, far below an answer."""
WRITES_AT_ONCE = 1
"""Images of one call written at once: the next image's pieces queue (up to
:data:`QUEUED_BYTES`) while the last one's write finishes (its fsync, its S3 PUT).
Measured with n=10 at 1536x1024 on S3 (SeaweedFS): two at once held two images'
parts (0.67x the answer's base64 in memory) and were slower than one (626 against
426 ms), the store's own write slots being shared by every call anyway."""
DISCARD_TIMEOUT_S = 10.0
"""How long a failed call spends deleting what it stored; what is left then goes
when its retention ends."""
_DEFAULT_CONTENT_TYPE = CONTENT_TYPES["png"]


class StoredDelivery:
    """One call's stored images: ``async with`` it, store through :meth:`sink` (a
    whole answer) or :meth:`put` (a streamed event's image), then :meth:`check`."""

    def __init__(
        self,
        store: ResultStore,
        call: CallInfo,
        *,
        retention: datetime.timedelta,
        deadline: float,
        link_lifetime: datetime.timedelta | None = None,
    ) -> None:
        """``deadline``: the call's, in ``loop.time()``; no write outlasts it."""
        self._store = store
        self._call = call
        self._retention = retention
        self._deadline = deadline
        self._link_lifetime = link_lifetime
        self.failure: StoreUnavailable | None = None
        """The store's first failure in this call; later images are dropped."""
        self._stored: list[StoredImage] = []
        self._sinks: list[StoringSink] = []

    def sink(self) -> StoringSink:
        """Where a whole answer's images go as they are decoded."""
        sink = StoringSink(self)
        self._sinks.append(sink)
        return sink

    async def put(self, image: Source, content_type: str) -> StoredImage | None:
        """Store one image (its bytes, or its pieces as they come); None when the
        store failed, in this write or an earlier one (see :attr:`failure`)."""
        if self.failure is not None:
            return None
        remaining = self._deadline - asyncio.get_running_loop().time()
        try:
            stored = await self._store.store_image(
                image,
                content_type=content_type,
                call=self._call,
                retention=self._retention,
                link_lifetime=self._link_lifetime,
                timeout_s=max(remaining, 0.001),
            )
        except StoreUnavailable as error:
            if self.failure is None:
                self.failure = error
            return None
        self._stored.append(stored)
        return stored

    async def put_event_image(self, image: bytes) -> StoredImage | None:
        """:meth:`put` for a streamed event's final image (its format from its bytes)."""
        return await self.put(image, content_type_of(image))

    def check(self) -> None:
        """Raise the store's failure, if there was one: after the call was priced."""
        if self.failure is not None:
            raise self.failure

    async def __aenter__(self) -> StoredDelivery:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        for sink in self._sinks:
            await sink.abort()
        await self._discard()

    async def _discard(self) -> None:
        """Delete what a failed call stored (best effort, bounded in time)."""
        stored, self._stored = self._stored, []
        if not stored:
            return
        try:
            async with asyncio.timeout(DISCARD_TIMEOUT_S):
                for item in stored:
                    await self._store.delete(item.object.key)
        except (StoreUnavailable, TimeoutError):
            log.warning(
                "stored images of a failed call were not deleted; they go when their "
                "retention ends",
                extra={"objects": len(stored)},
            )


class StoringSink:
    """The upstream's ``ImageSink`` for a stored delivery: each image to the store as
    it is decoded. :meth:`stored` once the answer is read."""

    def __init__(self, delivery: StoredDelivery) -> None:
        self._delivery = delivery
        self._feed: _Feed | None = None
        self._feeds: list[_Feed] = []
        self._writes: list[asyncio.Task[StoredImage | None]] = []
        self._slots = asyncio.Semaphore(WRITES_AT_ONCE)
        self._queued = 0
        self._room = asyncio.Event()
        self._room.set()

    def begin(self, image_format: str) -> None:
        feed = _Feed(self._taken)
        self._feed = feed
        self._feeds.append(feed)
        content_type = CONTENT_TYPES.get(image_format, _DEFAULT_CONTENT_TYPE)
        self._writes.append(asyncio.create_task(self._write(feed, content_type)))

    def write(self, piece: bytes) -> None:
        if self._delivery.failure is not None or self._feed is None:
            return  # the store failed: the rest of the answer is read and dropped
        self._feed.put(piece)
        self._queued += len(piece)
        if self._queued > QUEUED_BYTES:
            self._room.clear()

    def end(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    async def drain(self) -> None:
        while self._queued > QUEUED_BYTES and self._delivery.failure is None:
            await self._room.wait()

    async def stored(self) -> list[StoredImage | None]:
        """Each image's stored object, in order (None where the store failed)."""
        outcomes = await asyncio.gather(*self._writes, return_exceptions=True)
        stored: list[StoredImage | None] = []
        for outcome in outcomes:
            if isinstance(outcome, asyncio.CancelledError):
                stored.append(None)  # cancelled after another image's write failed
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                stored.append(outcome)
        return stored

    async def abort(self) -> None:
        """Cancel the writes under way (nothing of them becomes visible)."""
        for task in self._writes:
            task.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _write(self, feed: _Feed, content_type: str) -> StoredImage | None:
        async with self._slots:  # FIFO: images start in order
            stored = await self._delivery.put(feed.pieces(), content_type)
        if stored is None:
            self._abandon()
        return stored

    def _abandon(self) -> None:
        """The store failed: stop the other writes (cancelled, they leave nothing
        visible; a feed merely closed would store a truncated image) and drop what
        waits for them."""
        current = asyncio.current_task()
        for task in self._writes:
            if task is not current:
                task.cancel()
        for feed in self._feeds:
            feed.drop()
        self._queued = 0
        self._room.set()

    def _taken(self, size: int) -> None:
        self._queued -= size
        if self._queued <= QUEUED_BYTES:
            self._room.set()


class _Feed:
    """One image's decoded pieces on their way to its store write."""

    def __init__(self, taken: Callable[[int], None]) -> None:
        self._pieces: deque[bytes] = deque()
        self._closed = False
        self._more = asyncio.Event()
        self._taken = taken

    def put(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._more.set()

    def close(self) -> None:
        self._closed = True
        self._more.set()

    def drop(self) -> None:
        self._pieces.clear()

    async def pieces(self) -> AsyncIterator[bytes]:
        while True:
            if self._pieces:
                piece = self._pieces.popleft()
                self._taken(len(piece))
                yield piece
            elif self._closed:
                return
            else:
                self._more.clear()
                await self._more.wait()


def content_type_of(image: bytes) -> str:
    """The media type of an image by its first bytes (PNG when it is none we know)."""
    found = image_format(image[:64])
    return CONTENT_TYPES.get(found, _DEFAULT_CONTENT_TYPE) if found else _DEFAULT_CONTENT_TYPE


def place(
    result: results_pb2.ImagesResult,
    images: Sequence[bytes | None],
    stored: Sequence[StoredImage | None],
) -> None:
    """Each stored image into its place in ``result``: the images with data, in
    order (an item OpenAI answered with a URL keeps it)."""
    found = iter(stored)
    for message, image in zip(result.images, images, strict=True):
        if image is not None:
            item = next(found, None)
            if item is not None:
                set_stored(message, item)


def set_stored(message: results_pb2.GeneratedImage, stored: StoredImage) -> None:
    target = message.stored
    target.object = stored.object.key
    target.url = stored.link.url
    target.expires_at.FromDatetime(stored.link.expires)
    target.size_bytes = stored.object.size
    target.content_type = stored.object.content_type
    target.retained_until.FromDatetime(stored.object.expires)
