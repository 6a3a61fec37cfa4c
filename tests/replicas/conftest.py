"""One real redis-server, one emulator and one clients file per test, for its replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gateway.tenancy_support import ClientsFile
from limits.redis_support import RedisServer
from replica_support import OPENAI_KEY

from imagegate_server.emulator import Emulator, EmulatorConfig


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """The test's own, so that it may stop and restart it."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with RedisServer(directory) as server:
        yield server


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """In the test's process (its journal and faults at hand); the replicas are not."""
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")
