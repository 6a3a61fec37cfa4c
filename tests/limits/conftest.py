"""Limiter fixtures: real redis-server processes and both backends behind one fixture."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from redis_support import RedisServer

from imagegate_server.limits import SCHEMA, Limiter, MemoryLimiter, RedisLimiter, SqliteLimiter
from imagegate_server.localdb import LocalDatabase


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and restart."""
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}:"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client of the session's Redis, to look at what the limiter stored."""
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_limiter(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter.from_url(redis_server.url, prefix=prefix)
    yield limiter
    await limiter.aclose()


@pytest.fixture
async def local_database(tmp_path: Path) -> AsyncIterator[LocalDatabase]:
    """The gateway's local database in a directory of the test's own."""
    database = await LocalDatabase.open(tmp_path / "data", SCHEMA)
    yield database
    await database.aclose()


@pytest.fixture(params=["memory", "local", "redis"])
async def limiter(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Limiter]:
    """Each backend in turn: the behaviour users rely on is the same on all three."""
    backend: Limiter
    database = None
    if request.param == "memory":
        backend = MemoryLimiter()
    elif request.param == "local":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        database = await LocalDatabase.open(tmp_path / "data", SCHEMA)
        backend = SqliteLimiter(database)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = RedisLimiter.from_url(server.url, prefix=prefix)
    yield backend
    await backend.aclose()
    if database is not None:
        await database.aclose()
