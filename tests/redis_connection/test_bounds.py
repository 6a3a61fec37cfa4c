"""What a Redis that never answers can make the gateway hold: each command its timeout,
each waiting command at most 5 s for a connection, and nothing more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from imagegate_server.redis_connection import RedisConnection, RedisOptions, StoreFailure
from imagegate_server.redis_connection.connection import PERMIT_WAIT_S


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and never replies: a hung Redis, or a black-holed network."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_commands_queue_for_a_connection_at_most_five_seconds(
    silent_port: int, scheme: str
) -> None:
    options = RedisOptions(timeout_s=0.2, max_connections=1)
    connection = RedisConnection.from_url(f"{scheme}://127.0.0.1:{silent_port}", options)

    async def one() -> str:
        try:
            await connection.server_time_s()
        except StoreFailure as failure:
            return failure.code
        return "answered"

    started = time.monotonic()
    # 40 x 0.2 s one after the other would be 8 s: the last ones stop waiting at 5 s.
    codes = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(40))), 30)
    elapsed = time.monotonic() - started
    await connection.aclose()
    assert set(codes) == {"TIMEOUT", "BUSY"}, codes
    assert codes.count("TIMEOUT") <= PERMIT_WAIT_S / 0.2 + 1
    assert elapsed < PERMIT_WAIT_S + 10  # not 40 timeouts in a row, nor a hang
