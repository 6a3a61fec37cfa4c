"""Job store fixtures: the local database and a real redis-server, behind one fixture."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from limits.redis_support import RedisServer

from imagegate_server.jobs.local_store import SCHEMA, LocalJobStore
from imagegate_server.jobs.redis_store import RedisJobStore
from imagegate_server.jobs.store import JobStore
from imagegate_server.localdb import LocalDatabase


@pytest.fixture(scope="session")
def jobs_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session's store tests; each test has its own prefix."""
    with RedisServer(tmp_path_factory.mktemp("jobs-redis")) as server:
        yield server


@pytest.fixture(params=["local", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "local":
        database = await LocalDatabase.open(tmp_path / "data", SCHEMA)
        yield LocalJobStore(database)
        await database.aclose()
        return
    server: RedisServer = request.getfixturevalue("jobs_redis")
    client = redis.asyncio.Redis.from_url(server.url)
    blocking = redis.asyncio.Redis.from_url(server.url)
    yield RedisJobStore(client, blocking, prefix=f"t{secrets.token_hex(4)}:")
    await client.aclose()
    await blocking.aclose()
