"""The storage ledger on each backend (this process's memory, the local database, a real
Redis server and a real Redis Cluster): what each client holds, never below zero,
nothing kept for clients that hold nothing; and through gateways, shared as the
limiter's state is (by the workers and restarts of one data directory, by every
replica of one Redis)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from delivery_support import KEY, STORED, Caller, clients_file, store_overrides, target
from limits.redis_support import RedisServer
from support.gateways import started_gateways
from support.redis_deployments import Cluster

from imagegate_server.emulator import Emulator
from imagegate_server.localdb import LocalDatabase
from imagegate_server.redis_connection import RedisConnection, RedisOptions
from imagegate_server.store import SCHEMA, Holding, LocalLedger, MemoryLedger, RedisLedger
from imagegate_server.store.ledger import StorageLedger


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three primaries: a command on keys of two slots would be refused (CROSSSLOT)."""
    with Cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(params=["memory", "local", "redis", "redis-cluster"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageLedger]:
    prefix = f"t-{secrets.token_hex(4)}:"
    if request.param == "memory":
        yield MemoryLedger()
    elif request.param == "local":
        database = await LocalDatabase.open(tmp_path, SCHEMA)
        yield LocalLedger(database)
        await database.aclose()
    else:
        if request.param == "redis":
            server: RedisServer = request.getfixturevalue("redis_server")
            url = server.url
        else:
            cluster: Cluster = request.getfixturevalue("redis_cluster")
            url = cluster.url()
        connection = RedisConnection.from_url(url, RedisOptions(timeout_s=2.0))
        yield RedisLedger(connection, prefix)
        await connection.aclose()


async def test_what_a_client_holds(ledger: StorageLedger) -> None:
    await ledger.stored("team", 1000)
    await ledger.stored("team", 500)
    await ledger.stored(None, 7)
    assert await ledger.holding("team") == Holding(1500, 2)
    assert await ledger.holding(None) == Holding(7, 1)
    assert await ledger.holding("other") == Holding()
    await ledger.removed("team", 1000)
    assert await ledger.holding("team") == Holding(500, 1)
    # Objects the ledger never counted (stored before it, or while it was down) never
    # take a client below zero.
    await ledger.removed("team", 9000, 5)
    assert await ledger.holding("team") == Holding()
    await ledger.removed("nobody", 10)
    assert await ledger.holding("nobody") == Holding()


async def test_redis_keeps_one_hash_per_client_in_its_slot_and_none_when_empty(
    redis_server: RedisServer,
) -> None:
    connection = RedisConnection.from_url(redis_server.url)
    prefix = f"t-{secrets.token_hex(4)}:"
    ledger = RedisLedger(connection, prefix)
    try:
        await ledger.stored("team/odd name", 10)

        async def keys() -> list[str]:
            return [key async for key in connection.scan(f"{prefix}*")]

        # The limiter's hash tag for the client: the same Cluster slot as its limits.
        assert await keys() == [f"{prefix}{{c:team%2Fodd%20name}}:stored"]
        await ledger.removed("team/odd name", 10)
        assert await keys() == []
    finally:
        await connection.aclose()


async def test_the_local_ledger_outlives_a_restart(emulator: Emulator, tmp_path: Path) -> None:
    path, tokens = clients_file(tmp_path, team={})
    store = store_overrides("local", tmp_path, None)
    async with started_gateways(KEY, emulator.base_url, clients_file=path, **store) as start:
        gateway = await start()
        caller = Caller(grpc.aio.insecure_channel(target(gateway)), tokens["team"])
        async with caller.channel:
            stored = (await caller.generate(n=2, delivery=STORED)).images
        await gateway.stop(0)
        again = await start()
        caller = Caller(grpc.aio.insecure_channel(target(again)), tokens["team"])
        async with caller.channel:
            storage = (await caller.quota()).storage
    assert storage.stored_objects == 2
    assert storage.stored_bytes == sum(image.stored.size_bytes for image in stored)


async def test_replicas_on_one_redis_share_what_each_client_holds(
    emulator: Emulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, tokens = clients_file(tmp_path, team={"max_stored_bytes": 5 * 1024 * 1024 + 1000})
    shared = {"redis_url": redis_server.url, "redis_prefix": f"t-{secrets.token_hex(4)}:"}
    async with started_gateways(KEY, emulator.base_url, clients_file=path, **shared) as start:
        one = await start(**store_overrides("local", tmp_path / "one", None))
        two = await start(**store_overrides("local", tmp_path / "two", None))
        first = Caller(grpc.aio.insecure_channel(target(one)), tokens["team"])
        second = Caller(grpc.aio.insecure_channel(target(two)), tokens["team"])
        async with first.channel, second.channel:
            stored = (await first.generate(size="1024x1024", delivery=STORED)).images[0].stored
            storage = (await second.quota()).storage
            assert (storage.stored_bytes, storage.stored_objects) == (stored.size_bytes, 1)
            # What the first replica stored counts on the second: no room for another
            # image's bound (5 MiB) there.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await second.generate(size="1024x1024", delivery=STORED)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
