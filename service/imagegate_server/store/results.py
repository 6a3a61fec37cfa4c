"""The result store the gateway uses: one face over both backends, with the bounds,
metrics, spans, accounting and error handling they share.

    stored = await store.store_image(image, content_type="image/png", call=call,
                                     retention=timedelta(hours=24))
    stored.object.key, stored.link.url

Bounds: at most ``max_concurrent_writes`` writes per process (more wait, within
their timeout); each write within ``write_timeout`` from its first byte to its
last, else abandoned (nothing becomes visible) with
:class:`~imagegate_server.errors.StoreUnavailable`; memory per write bounded by
the backend (a chunk at a time on disk, a part at a time on S3).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from imagegate_server.errors import StoreUnavailable
from imagegate_server.store.backend import Attributes, Backend, Listed, Opened, Source
from imagegate_server.store.ledger import MemoryLedger, StorageLedger
from imagegate_server.store.objects import (
    CallInfo,
    Link,
    StoredImage,
    StoredObject,
    is_key,
    new_key,
    owner,
)
from imagegate_server.store.observe import StoreObserver, StoreTracer, Unobserved, Untraced

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
T = TypeVar("T")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    write_timeout: datetime.timedelta = datetime.timedelta(seconds=120)
    max_concurrent_writes: int = 64
    link_lifetime: datetime.timedelta = datetime.timedelta(hours=1)
    """Default lifetime of a link (a call may ask for less or more, up to the caps)."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    objects: int
    size: int
    full: bool
    """The batch was full: more may have expired."""


class StoredReader:
    """An object being read: ``reader.object``, then its bytes from ``chunks()``;
    ``async with`` it (or ``aclose``) so that an unread object is closed too."""

    def __init__(self, stored: StoredObject, opened: Opened) -> None:
        self.object = stored
        self._opened = opened

    def chunks(self) -> AsyncIterator[bytes]:
        return self._opened.chunks()

    async def aclose(self) -> None:
        await self._opened.aclose()

    async def __aenter__(self) -> StoredReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ResultStore:
    """Stored results: write, read, link, delete, sweep."""

    def __init__(
        self,
        backend: Backend,
        limits: StoreLimits | None = None,
        *,
        ledger: StorageLedger | None = None,
        observer: StoreObserver | None = None,
        tracer: StoreTracer | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.backend = backend
        self.limits = limits if limits is not None else StoreLimits()
        self.ledger: StorageLedger = ledger if ledger is not None else MemoryLedger()
        self._observer: StoreObserver = observer if observer is not None else Unobserved()
        self._tracer: StoreTracer = tracer if tracer is not None else Untraced()
        self._clock = clock
        self._writes = asyncio.Semaphore(self.limits.max_concurrent_writes)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    async def put(
        self,
        data: Source,
        *,
        content_type: str,
        call: CallInfo,
        retention: datetime.timedelta,
        timeout_s: float | None = None,
    ) -> StoredObject:
        """Store one image (its bytes, or its chunks as they are decoded) for
        ``retention``; visible whole once this returns, never in part.

        ``timeout_s``: what is left of the call's deadline, if it is shorter than the
        store's write timeout. Raises StoreUnavailable (nothing visible) when the
        backend fails or the write outlasts its timeout (waiting for a free write
        slot included); ValueError for a client name a key cannot hold.
        """
        expires = self._clock() + retention
        key = new_key(call.client, content_type, expires)
        attributes = Attributes(content_type, expires, call.metadata())
        name = self.backend.name
        span = self._tracer.write(name, key, content_type)
        started = time.perf_counter()
        try:
            limit = self.limits.write_timeout.total_seconds()
            async with asyncio.timeout(limit if timeout_s is None else min(limit, timeout_s)):
                async with self._writes:
                    size = await self.backend.write(key, data, attributes)
        except (StoreUnavailable, TimeoutError) as error:
            failure = error if isinstance(error, StoreUnavailable) else StoreUnavailable("timeout")
            self._failed(failure, started)
            span.failed(failure.kind)
            span.end()
            raise failure from None
        except BaseException as error:  # the caller left, or the source failed
            span.failed("cancelled" if isinstance(error, asyncio.CancelledError) else "aborted")
            span.end()
            raise
        self._observer.operation(name, "put", time.perf_counter() - started)
        self._observer.written(name, size)
        span.written(size)
        span.end()
        await self._account(self.ledger.stored(call.client, size))
        return StoredObject(key, size, content_type, expires, attributes.metadata)

    async def link(self, stored: StoredObject, lifetime: datetime.timedelta | None = None) -> Link:
        """A link that GETs ``stored`` with no other credential, valid for ``lifetime``
        (default: the store's), capped at the object's retention and the backend's
        maximum."""
        now = self._clock()
        wanted = lifetime if lifetime is not None else self.limits.link_lifetime
        expires = min(now + wanted, now + self.backend.max_link_lifetime, stored.expires)
        # Whole seconds, as links carry them: the expiry a result states is the one its
        # link keeps (never later than the object's retention).
        expires = expires.replace(microsecond=0)
        started = time.perf_counter()
        try:
            url = await self.backend.sign(stored.key, expires)
        except StoreUnavailable as error:
            self._failed(error, started)
            raise
        self._observer.operation(self.backend.name, "link", time.perf_counter() - started)
        return Link(url, expires)

    async def store_image(
        self,
        image: Source,
        *,
        content_type: str,
        call: CallInfo,
        retention: datetime.timedelta,
        link_lifetime: datetime.timedelta | None = None,
        timeout_s: float | None = None,
    ) -> StoredImage:
        """What the mapping stage calls per final image: the image stored, and a link
        to it. Also the benchmark's hook (stored against inline delivery)."""
        stored = await self.put(
            image, content_type=content_type, call=call, retention=retention, timeout_s=timeout_s
        )
        return StoredImage(stored, await self.link(stored, link_lifetime))

    async def stat(self, key: str) -> StoredObject | None:
        """The object ``key``, or None when there is none (or it is not one of our keys)."""
        if not is_key(key):
            return None
        found = await self._timed("get", self.backend.head(key))
        if found is None:
            return None
        size, attributes = found
        return StoredObject(
            key, size, attributes.content_type, attributes.expires, attributes.metadata
        )

    async def open(self, key: str) -> StoredReader | None:
        """The object ``key`` to read (``async with`` it, or ``aclose`` it), or None
        when there is none."""
        if not is_key(key):
            return None
        opened: Opened | None = await self._timed("get", self.backend.open(key))
        if opened is None:
            return None
        attributes = opened.attributes
        stored = StoredObject(
            key, opened.size, attributes.content_type, attributes.expires, attributes.metadata
        )
        return StoredReader(stored, opened)

    async def delete(self, key: str) -> bool:
        """Delete ``key`` now (before its retention ends); False when there was none."""
        found = await self.stat(key)
        if found is None:
            return False
        await self._timed("delete", self.backend.delete([key]))
        await self._account(self.ledger.removed(owner(key), found.size))
        return True

    async def sweep(self, limit: int) -> SweepResult:
        """Delete up to ``limit`` expired objects, and account for them."""
        expired: list[Listed] = await self._timed(
            "list", self.backend.expired(self._clock(), limit)
        )
        if expired:
            await self._timed("delete", self.backend.delete([item.key for item in expired]))
        by_client: dict[str | None, tuple[int, int]] = {}
        for item in expired:
            size, count = by_client.get(owner(item.key), (0, 0))
            by_client[owner(item.key)] = (size + item.size, count + 1)
        for client, (size, count) in by_client.items():
            await self._account(self.ledger.removed(client, size, count))
        total = sum(item.size for item in expired)
        return SweepResult(len(expired), total, full=len(expired) >= limit)

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def _timed(self, operation: str, awaitable: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await awaitable
        except StoreUnavailable as error:
            self._failed(error, started)
            raise
        self._observer.operation(self.backend.name, operation, time.perf_counter() - started)
        return result

    async def _account(self, update: Awaitable[None]) -> None:
        """Accounting is best effort: a ledger that fails must not turn a stored (and
        billed) result into a failed call, whose retry would be billed again."""
        try:
            await update
        except Exception as error:
            log.warning("store ledger failed", extra={"error": type(error).__name__})

    def _failed(self, error: StoreUnavailable, started: float) -> None:
        seconds = time.perf_counter() - started
        self._observer.failed(self.backend.name, error.operation, error.kind, seconds)
        log.warning(
            "result store failed",
            extra={"backend": self.backend.name, "operation": error.operation, "kind": error.kind},
        )
