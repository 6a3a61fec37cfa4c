"""When stored delivery cannot be had: a store that is down or fails mid-write
(UNAVAILABLE, STORE_UNAVAILABLE; the call still costs what OpenAI billed and its log
line says so; nothing reported OK), a client over its storage quota
(RESOURCE_EXHAUSTED before anything goes upstream, where the answer's size has a
bound), and a client that may not store (PERMISSION_DENIED)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest
from delivery_support import (
    KEY,
    NEWER_MODEL,
    STORED,
    Caller,
    clients_file,
    detail,
    error_reason,
    store_overrides,
    target,
)
from google.rpc import error_details_pb2
from support.gateways import GatewayFactory, started_gateways
from weed_support import WeedServer

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway

GENERATIONS = "/v1/images/generations"
LOGGER = "imagegate_server.gateway.servicer"


def caller_of(gateway: Gateway, token: str | None = None) -> Caller:
    return Caller(grpc.aio.insecure_channel(target(gateway)), token)


def break_local_store(gateway: Gateway) -> None:
    """The local store's directory becomes a file: every write fails (as a full or
    read-only disk would; the tests run as root, whom permissions do not stop)."""
    directory = gateway.settings.store_directory()
    shutil.rmtree(directory, ignore_errors=True)
    directory.write_bytes(b"not a directory")


def finished_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The "rpc finished" lines of CreateImage calls, in order."""
    return [
        r
        for r in caplog.records
        if r.name == LOGGER
        and r.getMessage() == "rpc finished"
        and getattr(r, "rpc", "") == "CreateImage"
    ]


async def _assert_failed_but_billed(
    caller: Caller,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    call: Any,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(caught.value) == "STORE_UNAVAILABLE"
    assert len(emulator.journal.by_path(GENERATIONS)) == 1  # OpenAI made (and billed) it
    # Its cost is booked, priced by the answer's usage: what the same call costs inline.
    spent = (await caller.quota()).spent_today_usd_micros
    inline = await caller.generate(n=2)
    assert spent == inline.cost.usd_micros > 0
    line = finished_lines(caplog)[0]
    assert (line.code, line.delivery) == ("UNAVAILABLE", "stored")  # type: ignore[attr-defined]
    assert line.cost_usd * 1_000_000 == pytest.approx(spent)  # type: ignore[attr-defined]
    # Nothing of it is held against the client.
    storage = (await caller.quota()).storage
    assert (storage.stored_bytes, storage.stored_objects) == (0, 0)


@pytest.mark.slow  # S3: a SeaweedFS restart
@pytest.mark.parametrize("store", ["local", "s3"])
async def test_a_store_that_is_down_fails_the_call_unavailable_and_it_is_billed(
    emulator: Emulator,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    store: str,
) -> None:
    weed: WeedServer | None = request.getfixturevalue("weed") if store == "s3" else None
    path, tokens = clients_file(tmp_path, team={"daily_budget_usd": 100})
    async with started_gateways(
        KEY, emulator.base_url, clients_file=path, **store_overrides(store, tmp_path, weed)
    ) as start:
        gateway = await start()
        caller = caller_of(gateway, tokens["team"])
        async with caller.channel:
            if weed is not None:
                weed.stop()
            else:
                break_local_store(gateway)
            caplog.set_level(logging.INFO, logger=LOGGER)
            try:
                await _assert_failed_but_billed(
                    caller, emulator, caplog, caller.generate(n=2, delivery=STORED)
                )
            finally:
                if weed is not None:
                    weed.start()


@pytest.mark.slow  # S3: a SeaweedFS restart
@pytest.mark.parametrize("store", ["local", "s3"])
async def test_a_store_that_fails_mid_answer_leaves_nothing_reported(
    emulator: Emulator,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    store: str,
) -> None:
    weed: WeedServer | None = request.getfixturevalue("weed") if store == "s3" else None
    path, tokens = clients_file(tmp_path, team={})
    async with started_gateways(
        KEY, emulator.base_url, clients_file=path, **store_overrides(store, tmp_path, weed)
    ) as start:
        gateway = await start()
        caller = caller_of(gateway, tokens["team"])
        async with caller.channel:
            # The answer trickles in (about 2 s): the store fails while it is read.
            emulator.set_faults("slow;bytes=4096;ms=60")
            caplog.set_level(logging.INFO, logger=LOGGER)
            call = asyncio.ensure_future(caller.generate(n=2, delivery=STORED))
            await emulator.journal.wait_for(lambda entries: len(entries) >= 1)
            await asyncio.sleep(0.5)
            if weed is not None:
                weed.stop()
            else:
                break_local_store(gateway)
            try:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
            finally:
                emulator.set_faults("")
                if weed is not None:
                    weed.start()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_reason(caught.value) == "STORE_UNAVAILABLE"
            line = finished_lines(caplog)[0]
            assert line.code == "UNAVAILABLE"  # type: ignore[attr-defined]
            assert line.cost_usd > 0  # type: ignore[attr-defined]
            assert (await caller.quota()).spent_today_usd_micros > 0


async def test_a_client_over_its_quota_is_refused_before_openai_is_called(
    start: GatewayFactory, emulator: Emulator, tmp_path: Path
) -> None:
    # gpt-image-2 at 1024x1024 PNG: at most 5 MiB a decoded image (4 B/px + 1 MiB).
    bound = 1024 * 1024 * 4 + 1024 * 1024
    quota = bound + 1000  # one image's bound, and less than an image more
    path, tokens = clients_file(tmp_path, small={"max_stored_bytes": quota})
    gateway = await start(clients_file=path)
    caller = caller_of(gateway, tokens["small"])
    async with caller.channel:
        first = await caller.generate(size="1024x1024", delivery=STORED)
        held = first.images[0].stored.size_bytes
        storage = (await caller.quota()).storage
        assert (storage.stored_bytes, storage.stored_objects) == (held, 1)
        assert storage.max_stored_bytes == quota and storage.may_store
        requests = len(emulator.journal.entries)
        assert held > 1000
        # No room for another image's bound on top of what it holds.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.generate(size="1024x1024", delivery=STORED)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        failure = detail(caught.value, error_details_pb2.QuotaFailure)
        (violation,) = failure.violations
        assert (violation.quota_id, violation.subject) == ("stored_bytes", "client:small")
        assert str(quota) in violation.description
        assert len(emulator.journal.entries) == requests  # nothing went upstream
        # Two images could never fit: refused however little the client holds.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.generate(n=2, size="1024x1024", delivery=STORED)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The quota is the store's: inline results are not counted against it.
        inline = await caller.generate(n=2, size="1024x1024")
        assert len(inline.images) == 2


async def test_a_model_with_no_size_bound_is_checked_after_and_may_pass_the_quota_once(
    start: GatewayFactory, emulator: Emulator, tmp_path: Path
) -> None:
    path, tokens = clients_file(tmp_path, tiny={"max_stored_bytes": 1000})
    gateway = await start(clients_file=path)
    caller = caller_of(gateway, tokens["tiny"])
    async with caller.channel:
        result = await caller.generate(model=NEWER_MODEL, delivery=STORED)
        size = result.images[0].stored.size_bytes
        assert size > 1000  # stored, and past the quota: its bytes were unknown before
        assert (await caller.quota()).storage.stored_bytes == size
        requests = len(emulator.journal.entries)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.generate(model=NEWER_MODEL, delivery=STORED)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len(emulator.journal.entries) == requests


async def test_a_client_that_may_not_store_is_permission_denied_before_openai(
    start: GatewayFactory, emulator: Emulator, tmp_path: Path
) -> None:
    path, tokens = clients_file(tmp_path, plain={"store_results": False})
    gateway = await start(clients_file=path)
    caller = caller_of(gateway, tokens["plain"])
    async with caller.channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.generate(delivery=STORED)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(caught.value) == "STORE_NOT_ALLOWED"
        assert emulator.journal.entries == []
        assert not (await caller.quota()).storage.may_store
        assert (await caller.generate()).images[0].data  # inline still works
