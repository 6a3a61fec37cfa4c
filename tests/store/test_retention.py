"""Retention: the sweeper deletes expired results in the background, one replica at a
time (a lease in this process, or in a real Redis shared by replicas), and keeps
going when a pass fails; the ledger it reports to."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from limits.redis_support import RedisServer
from store_support import Clock, store_settings

from imagegate_server.redis_connection import RedisConnection
from imagegate_server.store import (
    CallInfo,
    Holding,
    InProcessLock,
    MemoryLedger,
    RedisLock,
    ResultStore,
    RunningStore,
    Sweeper,
    open_store,
)

HOUR = datetime.timedelta(hours=1)
CALL = CallInfo("acme")


class Outcomes:
    """An observer that only counts sweep outcomes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def operation(self, backend: str, operation: str, seconds: float) -> None: ...
    def written(self, backend: str, size: int) -> None: ...
    def failed(self, backend: str, operation: str, kind: str, seconds: float) -> None: ...
    def link_request(self, status: int) -> None: ...

    def swept(self, outcome: str, objects: int, size: int) -> None:
        self.seen.append((outcome, objects))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[RedisConnection]:
    connection = RedisConnection.from_url(redis_server.url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[RunningStore]:
    running = await open_store(store_settings("local", tmp_path))
    yield running
    await running.aclose()


async def _expired_objects(store: ResultStore, clock: Clock, count: int) -> list[str]:
    keys = [
        (await store.put(b"x" * 10, content_type="image/png", call=CALL, retention=HOUR)).key
        for _ in range(count)
    ]
    clock.advance(hours=2)
    return keys


async def test_the_redis_lease_has_one_holder_and_only_it_releases(
    redis_client: RedisConnection,
) -> None:
    prefix = f"t{secrets.token_hex(3)}:"
    first, second = RedisLock(redis_client, prefix), RedisLock(redis_client, prefix)
    assert first.key == f"{prefix}{{store}}:sweeper"  # one hash tag: one Cluster slot
    assert await first.acquire(30)
    assert not await second.acquire(30)
    await second.release()  # not its lease: nothing happens
    assert not await second.acquire(30)
    await first.release()
    assert await second.acquire(30)
    await second.release()


async def test_a_redis_lease_lapses_by_itself_and_a_late_release_keeps_the_new_one(
    redis_client: RedisConnection,
) -> None:
    prefix = f"t{secrets.token_hex(3)}:"
    crashed, other = RedisLock(redis_client, prefix), RedisLock(redis_client, prefix)
    assert await crashed.acquire(0.2)
    await asyncio.sleep(0.4)
    assert await other.acquire(30)  # the holder vanished: its lease lapsed
    await crashed.release()  # a late release must not free the new holder's lease
    assert await redis_client.client.get(other.key) is not None
    await other.release()


async def test_only_one_replica_sweeps_at_a_time(
    local: RunningStore, clock: Clock, redis_client: RedisConnection
) -> None:
    """Two replicas on one store: while one holds the lease, the other skips."""
    store = ResultStore(local.store.backend, clock=clock)
    await _expired_objects(store, clock, 3)
    prefix = f"t{secrets.token_hex(3)}:"
    seen = Outcomes()
    replica_a = Sweeper(store, RedisLock(redis_client, prefix), interval_s=60, batch=10)
    replica_b = Sweeper(
        store, RedisLock(redis_client, prefix), interval_s=60, batch=10, observer=seen
    )
    holder = RedisLock(redis_client, prefix)  # replica A in the middle of its sweep
    assert await holder.acquire(30)
    assert not await replica_b.sweep_once()
    assert seen.seen == [("skipped", 0)]
    assert len(await store.backend.expired(clock(), 10)) == 3  # nothing deleted
    await holder.release()
    await replica_a.sweep_once()
    assert await store.backend.expired(clock(), 10) == []
    await replica_b.sweep_once()
    assert seen.seen[-1] == ("swept", 0)


async def test_the_background_sweeper_deletes_expired_results(
    local: RunningStore, clock: Clock
) -> None:
    ledger = MemoryLedger()
    store = ResultStore(local.store.backend, ledger=ledger, clock=clock)
    keys = await _expired_objects(store, clock, 25)
    seen = Outcomes()
    sweeper = Sweeper(store, InProcessLock(), interval_s=0.05, batch=10, observer=seen)
    sweeper.start()
    try:
        for _ in range(1200):  # at most a minute
            if not await store.backend.expired(clock(), 100):
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert all([await store.stat(key) is None for key in keys])
    assert await ledger.holding("acme") == Holding()
    # 25 objects in batches of 10: full batches are swept back to back.
    assert [objects for outcome, objects in seen.seen if objects][:3] == [10, 10, 5]


async def test_a_failing_pass_is_reported_and_the_next_one_sweeps(
    local: RunningStore, clock: Clock, tmp_path: Path
) -> None:
    store = ResultStore(local.store.backend, clock=clock)
    await _expired_objects(store, clock, 2)
    seen = Outcomes()

    class Unreachable:
        async def acquire(self, lease_s: float) -> bool:
            raise ConnectionError("redis is down")

        async def release(self) -> None: ...

    assert not await Sweeper(
        store, Unreachable(), interval_s=60, batch=10, observer=seen
    ).sweep_once()
    assert seen.seen == [("failed", 0)]
    assert len(await store.backend.expired(clock(), 10)) == 2
    await Sweeper(store, InProcessLock(), interval_s=60, batch=10, observer=seen).sweep_once()
    assert seen.seen[-1] == ("swept", 2)


async def test_the_in_process_lease_is_exclusive_until_released() -> None:
    lock = InProcessLock()
    assert await lock.acquire(30)
    assert not await lock.acquire(30)
    await lock.release()
    assert await lock.acquire(30)


async def test_open_store_sweeps_when_configured(tmp_path: Path) -> None:
    running = await open_store(
        store_settings("local", tmp_path, store_sweep=True, store_sweep_interval_s=0.05)
    )
    try:
        assert running.sweeper is not None
        store = running.store
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
        old = ResultStore(store.backend, clock=lambda: past)
        stored = await old.put(b"x", content_type="image/png", call=CALL, retention=HOUR)
        for _ in range(1200):  # at most a minute
            if await store.stat(stored.key) is None:
                break
            await asyncio.sleep(0.05)
        assert await store.stat(stored.key) is None
    finally:
        await running.aclose()


async def test_the_memory_ledger_counts_per_client_and_never_goes_below_zero() -> None:
    ledger = MemoryLedger()
    await ledger.stored("a", 100)
    await ledger.stored("a", 50)
    await ledger.stored(None, 7)
    assert await ledger.holding("a") == Holding(150, 2)
    assert await ledger.holding(None) == Holding(7, 1)
    await ledger.removed("a", 100)
    assert await ledger.holding("a") == Holding(50, 1)
    await ledger.removed("a", 500, 3)  # objects stored before a restart
    assert await ledger.holding("a") == Holding()
    await ledger.removed("nobody", 10)
    assert await ledger.holding("nobody") == Holding()
