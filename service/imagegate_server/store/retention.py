"""Retention: a sweeper that deletes expired results, one bounded batch per pass,
with one replica at a time doing it.

Where the backend has lifecycle rules (S3), a rule may do the deleting instead (see
the store's documentation for the rule); the sweeper is still what deletes on time
(lifecycle rules count whole days) and what keeps the per-client ledger right.

The "one at a time" is a lease (:class:`SweepLock`): in one process an
:class:`InProcessLock`; across replicas a :class:`RedisLock` (``SET NX PX`` with a
random token, released only by its holder, in one script). A pass lasts at most
half the lease, so a lease never lapses while its holder still sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from typing import Protocol

from imagegate_server.errors import StoreUnavailable
from imagegate_server.redis_connection import KeySpace, RedisConnection, Script
from imagegate_server.store.observe import StoreObserver, Unobserved
from imagegate_server.store.results import ResultStore

log = logging.getLogger(__name__)

# Deletes the lock only when it still holds our token (it may have expired and been
# taken by another replica since).
_RELEASE = Script("""
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
""")


# Full batches swept back to back before the next interval: a backlog (after an
# outage) drains quickly, and a backend that fails to delete cannot spin the loop.
_MAX_PASSES_IN_A_ROW = 10


class SweepLock(Protocol):
    """A lease on "the sweep": at most one holder at a time, lapsing by itself."""

    async def acquire(self, lease_s: float) -> bool:
        """Take the lease for ``lease_s`` if nobody holds it; whether we got it."""

    async def release(self) -> None:
        """Give it back (only if we still hold it)."""


class InProcessLock:
    """The lease within one process (a single replica, or tests)."""

    def __init__(self) -> None:
        self._until = 0.0

    async def acquire(self, lease_s: float) -> bool:
        now = time.monotonic()
        if now < self._until:
            return False
        self._until = now + lease_s
        return True

    async def release(self) -> None:
        self._until = 0.0


class RedisLock:
    """The lease across replicas, in Redis: ``<prefix>{store}:sweeper`` (a hash tag,
    so the key has a fixed Cluster slot beside any the store adds later).

    ``redis`` is the gateway's :class:`~imagegate_server.redis_connection.RedisConnection`
    (one server, Sentinel or Cluster), made and closed by its owner.
    """

    def __init__(self, redis: RedisConnection, prefix: str = "imagegate:") -> None:
        self._redis = redis
        (self.key,) = KeySpace(prefix).keys("store", "sweeper")
        self._token: str | None = None

    async def acquire(self, lease_s: float) -> bool:
        token, key, ms = secrets.token_hex(16), self.key, max(int(lease_s * 1000), 1)
        taken = await self._redis.call(lambda client: client.set(key, token, nx=True, px=ms))
        if taken:
            self._token = token
        return bool(taken)

    async def release(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            await self._redis.run(_RELEASE, [self.key], [token])


class Sweeper:
    """Sweeps every ``interval_s`` (with jitter, so replicas do not line up), again at
    once while batches come back full; a failed pass is logged and retried at the
    next interval."""

    def __init__(
        self,
        store: ResultStore,
        lock: SweepLock,
        *,
        interval_s: float,
        batch: int,
        observer: StoreObserver | None = None,
    ) -> None:
        self._store = store
        self._lock = lock
        self._interval_s = interval_s
        self._batch = batch
        self._observer: StoreObserver = observer if observer is not None else Unobserved()
        self._lease_s = max(2 * interval_s, 60.0)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="store-sweeper")

    async def stop(self) -> None:
        """Let a pass under way finish (its deletions accounted for), within its time
        bound; then the sweeper is gone."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=self._lease_s / 2 + 1)  # cancels past it

    async def sweep_once(self) -> bool:
        """One pass, if no other replica is sweeping; whether its batch was full."""
        try:
            if not await self._lock.acquire(self._lease_s):
                self._observer.swept("skipped", 0, 0)
                return False
        except Exception as error:  # Redis down: nobody sweeps now; objects wait
            self._failed(error)
            return False
        try:
            async with asyncio.timeout(self._lease_s / 2):
                result = await self._store.sweep(self._batch)
        except (StoreUnavailable, TimeoutError) as error:
            self._failed(error)
            return False
        finally:
            with contextlib.suppress(Exception):  # unreleased, it lapses by itself
                await self._lock.release()
        self._observer.swept("swept", result.objects, result.size)
        if result.objects:
            log.info(
                "swept expired results",
                extra={"objects": result.objects, "bytes": result.size},
            )
        return result.full

    async def _run(self) -> None:
        while True:
            pause = self._interval_s * random.uniform(0.8, 1.2)  # noqa: S311
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=pause)
            for _ in range(_MAX_PASSES_IN_A_ROW):
                if self._stopping.is_set() or not await self.sweep_once():
                    break
                await asyncio.sleep(0)  # a full batch: more expired; let others run
            if self._stopping.is_set():
                return

    def _failed(self, error: BaseException) -> None:
        self._observer.swept("failed", 0, 0)
        kind = error.kind if isinstance(error, StoreUnavailable) else type(error).__name__
        log.warning("result sweep failed; retrying at the next interval", extra={"kind": kind})
