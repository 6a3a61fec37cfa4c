"""Job store fixtures: the local database, a real redis-server and a real Redis
Cluster, behind one fixture."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from limits.redis_support import RedisServer
from support.redis_deployments import Cluster

from imagegate_server.jobs.local_schema import SCHEMA
from imagegate_server.jobs.local_store import LocalJobStore
from imagegate_server.jobs.redis_store import RedisJobStore
from imagegate_server.jobs.store import JobStore
from imagegate_server.localdb import LocalDatabase
from imagegate_server.redis_connection import RedisConnection, RedisOptions


@pytest.fixture(scope="session")
def jobs_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session's store tests; each test has its own prefix."""
    with RedisServer(tmp_path_factory.mktemp("jobs-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def jobs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A three-primary Redis Cluster: a script whose keys a Cluster would refuse fails."""
    with Cluster(tmp_path_factory.mktemp("jobs-cluster")) as cluster:
        yield cluster


@pytest.fixture(params=["local", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "local":
        database = await LocalDatabase.open(tmp_path / "data", SCHEMA)
        yield LocalJobStore(database)
        await database.aclose()
        return
    if request.param == "redis":
        url = request.getfixturevalue("jobs_redis").url
    else:
        url = request.getfixturevalue("jobs_cluster").url()
    connection = RedisConnection.from_url(url, RedisOptions(timeout_s=2.0))
    blocking = RedisConnection.from_url(url, RedisOptions(timeout_s=10.0, max_connections=4))
    yield RedisJobStore(connection, blocking, prefix=f"t{secrets.token_hex(4)}:")
    await connection.aclose()
    await blocking.aclose()
