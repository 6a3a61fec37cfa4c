"""One real redis-server (or a Redis Cluster), one emulator and one clients file per
test, for its replicas."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gateway.tenancy_support import ClientsFile
from limits.redis_support import RedisServer
from replica_support import OPENAI_KEY, SharedRedis
from support.redis_deployments import Cluster

from imagegate_server.emulator import Emulator, EmulatorConfig


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """The test's own, so that it may stop and restart it."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with RedisServer(directory) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A three-primary Redis Cluster for the session; tests keep apart by key prefix."""
    with Cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(params=["single", "cluster"])
def shared_redis(request: pytest.FixtureRequest) -> SharedRedis:
    """The replicas' Redis: a server of the test's own, or the session's Cluster seeded
    with one of its nodes."""
    prefix = f"t{secrets.token_hex(4)}:"
    if request.param == "single":
        server: RedisServer = request.getfixturevalue("redis_server")
        return SharedRedis("single", server.url, prefix)
    cluster: Cluster = request.getfixturevalue("redis_cluster")
    return SharedRedis("cluster", cluster.url(cluster.nodes[1]), prefix)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """In the test's process (its journal and faults at hand); the replicas are not."""
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")
