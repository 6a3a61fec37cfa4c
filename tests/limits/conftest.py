"""Limiter fixtures: real redis-server processes and both backends behind one fixture."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from redis_support import RedisServer
from support.redis_deployments import Cluster, Sentinels

from imagegate_server.limits import SCHEMA, Limiter, MemoryLimiter, RedisLimiter, SqliteLimiter
from imagegate_server.localdb import LocalDatabase


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One three-primary Redis Cluster for the session (no replicas: nothing fails over
    while it runs); tests keep apart by key prefix."""
    with Cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    """A primary, its replica and three sentinels for the session."""
    with Sentinels(tmp_path_factory.mktemp("sentinels")) as sentinels:
        yield sentinels


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


@pytest.fixture(params=["memory", "local", "redis", "redis-cluster", "redis-sentinel"])
async def limiter(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Limiter]:
    """Each backend in turn: the behaviour users rely on is the same on all of them.

    On a real Redis Cluster (seeded with one of its nodes), every script and
    multi-key command whose keys are not all in one hash slot fails: redis-py's
    cluster client refuses to route it, and the Cluster answers CROSSSLOT."""
    backend: Limiter
    database = None
    if request.param == "memory":
        backend = MemoryLimiter()
    elif request.param == "local":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        database = await LocalDatabase.open(tmp_path / "data", SCHEMA)
        backend = SqliteLimiter(database)
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = RedisLimiter.from_url(server.url, prefix=prefix)
    elif request.param == "redis-cluster":
        cluster: Cluster = request.getfixturevalue("redis_cluster")
        backend = RedisLimiter.from_url(cluster.url(), prefix=prefix, timeout_s=2.0)
    else:
        sentinels: Sentinels = request.getfixturevalue("redis_sentinels")
        backend = RedisLimiter.from_url(sentinels.url, prefix=prefix, timeout_s=2.0)
    yield backend
    await backend.aclose()
    if database is not None:
        await database.aclose()
