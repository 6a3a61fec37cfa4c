"""An S3 store that fails: stopped in the middle of a write, down, or refusing our
credentials. Each is one error (StoreUnavailable, with its kind), quickly, and no
object, whole or partial, becomes visible."""

from __future__ import annotations

import asyncio
import datetime
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import obstore
import pytest
from store_support import BUCKET, s3_settings
from support.serve import free_port
from weed_support import WeedServer

from imagegate_server.errors import StoreUnavailable
from imagegate_server.store import CallInfo, Holding, open_store

DAY = datetime.timedelta(days=1)
CALL = CallInfo(client="acme", model="gpt-image-2", request_id="r1")
MIB = 1024 * 1024


@pytest.fixture
def own_weed(tmp_path: Path) -> WeedServer:
    """A SeaweedFS of the test's own, which it may kill and restart."""
    server = WeedServer(tmp_path / "weed")
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


async def _listed(weed: WeedServer, prefix: str) -> list[str]:
    listing = obstore.list(weed.store(BUCKET), prefix.rstrip("/"))
    return [meta["path"] async for page in listing for meta in page]


async def test_a_server_killed_mid_write_fails_the_write_and_shows_nothing(
    own_weed: WeedServer, tmp_path: Path
) -> None:
    settings = s3_settings(own_weed, tmp_path, store_part_bytes=5 * MIB, store_write_timeout_s=60)
    running = await open_store(settings)
    first_part_sent = asyncio.Event()
    killed = threading.Event()

    async def answer() -> AsyncIterator[bytes]:
        for index in range(12):  # 12 MiB: three parts
            if index == 7:  # the first part is up, the second under way
                first_part_sent.set()
                await asyncio.to_thread(killed.wait, 60)
            yield os.urandom(MIB)

    async def kill_when_halfway() -> None:
        await first_part_sent.wait()
        await asyncio.to_thread(own_weed.stop)
        killed.set()

    try:
        killer = asyncio.create_task(kill_when_halfway())
        with pytest.raises(StoreUnavailable) as raised:
            await running.store.put(answer(), content_type="image/png", call=CALL, retention=DAY)
        await killer
        assert raised.value.kind in ("unreachable", "refused")
        assert await running.store.ledger.holding("acme") == Holding()
    finally:
        await running.aclose()
    # Back up on the same data: no object under the prefix, not even a partial one.
    await asyncio.to_thread(own_weed.start)
    assert await _listed(own_weed, settings.store_s3_prefix) == []


async def test_a_server_that_is_down_fails_fast(weed: WeedServer, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = s3_settings(weed, tmp_path, store_write_timeout_s=60, store_s3_endpoint=closed)
    running = await open_store(settings)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await running.store.put(b"x" * 1000, content_type="image/png", call=CALL, retention=DAY)
        assert raised.value.kind == "unreachable"  # not a timeout: refused, said at once
        with pytest.raises(StoreUnavailable):
            await running.store.stat("2026-01-01/0000/acme/" + "0" * 32 + ".png")
    finally:
        await running.aclose()


async def test_refused_credentials_are_store_unavailable(weed: WeedServer, tmp_path: Path) -> None:
    settings = s3_settings(weed, tmp_path).model_copy(
        update={"store_s3_secret_access_key": _secret("not-the-secret-0123456789")}
    )
    running = await open_store(settings)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await running.store.put(b"x", content_type="image/png", call=CALL, retention=DAY)
        assert raised.value.kind in ("denied", "refused")
        assert "not-the-secret" not in str(raised.value)
    finally:
        await running.aclose()
    assert await _listed(weed, settings.store_s3_prefix) == []


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)
