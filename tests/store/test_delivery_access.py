"""Who reaches a stored result, and for how long: links carry no credential and stop at
their expiry, the local link port refuses anything but a link it made (403, no
body), a client reaches only its own objects through the gateway (NOT_FOUND alike
for another client's and an unknown one), retention follows the client's policy
within the operator's maximum, and once swept an object is gone everywhere."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from delivery_support import STORED, Caller, clients_file, error_reason, fetch, target
from support.gateways import GatewayFactory
from weed_support import SECRET_KEY

from imagegate_server.gateway.server import Gateway
from imagegate_server.localdb import LocalDatabase
from imagegate_server.store import SCHEMA, LocalLedger, open_store
from imagegate_server.store.signing import KEY_FILE

TEAMS = {"team-a": {}, "team-b": {}}


def caller_of(gateway: Gateway, token: str | None) -> Caller:
    return Caller(grpc.aio.insecure_channel(target(gateway)), token)


async def get(url: str) -> tuple[int, bytes]:
    answer = await fetch(url)
    return answer.status_code, answer.content


async def test_a_client_reaches_only_its_own_objects_and_unknown_ones_look_the_same(
    start: GatewayFactory, tmp_path: Path
) -> None:
    path, tokens = clients_file(tmp_path, **TEAMS)
    gateway = await start(clients_file=path)
    a, b = caller_of(gateway, tokens["team-a"]), caller_of(gateway, tokens["team-b"])
    async with a.channel, b.channel:
        stored = (await a.generate(delivery=STORED)).images[0].stored
        fresh = await a.relink(stored.object)
        assert fresh.object == stored.object and fresh.size_bytes == stored.size_bytes
        assert (await get(fresh.url))[0] == 200
        day, minute, *_ = stored.object.split("/")
        unknown = f"{day}/{minute}/team-b/{secrets.token_hex(16)}.png"
        answers = []
        for reference in (stored.object, unknown, "not/a/key", "../../etc/passwd"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await b.relink(reference)
            answers.append(
                (caught.value.code(), caught.value.details(), error_reason(caught.value))
            )
        assert (
            answers == [(grpc.StatusCode.NOT_FOUND, answers[0][1], "STORED_IMAGE_NOT_FOUND")] * 4
        )  # one answer, whatever the reason: no oracle
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await b.relink("")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    anonymous = caller_of(gateway, None)
    async with anonymous.channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await anonymous.relink(stored.object)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_links_carry_no_credential(start: GatewayFactory, tmp_path: Path) -> None:
    gateway = await start()
    caller = caller_of(gateway, None)
    async with caller.channel:
        url = (await caller.generate(delivery=STORED)).images[0].stored.url
    # A signature, never a secret: S3's secret key, the local store's signing key.
    assert SECRET_KEY not in url
    key_file = gateway.settings.data_dir / KEY_FILE
    if gateway.settings.store_backend == "local":
        assert key_file.read_text().strip() not in url
        assert set(parse_qs(urlsplit(url).query)) == {"expires", "signature"}
    else:
        assert "X-Amz-Signature" in parse_qs(urlsplit(url).query)


async def test_a_link_stops_at_its_expiry_and_a_fresh_one_works(
    start: GatewayFactory, tmp_path: Path
) -> None:
    # Long enough for the call to answer on a loaded machine before its link expires.
    gateway = await start(store_link_lifetime_s=3)
    caller = caller_of(gateway, None)
    async with caller.channel:
        stored = (await caller.generate(delivery=STORED)).images[0].stored
        assert (await get(stored.url))[0] == 200
        left = stored.expires_at.ToDatetime(datetime.UTC) - datetime.datetime.now(datetime.UTC)
        await asyncio.sleep(left.total_seconds() + 1.2)
        status, body = await get(stored.url)
        assert status == 403
        if gateway.settings.store_backend == "local":
            assert body == b""
        fresh = await caller.relink(stored.object)
        assert (await get(fresh.url))[0] == 200


async def test_a_link_that_was_not_made_so_is_refused(start: GatewayFactory) -> None:
    gateway = await start()
    caller = caller_of(gateway, None)
    async with caller.channel:
        stored = (await caller.generate(delivery=STORED)).images[0].stored
    url = stored.url
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    other = stored.object[:-8] + "0000" + stored.object[-4:]
    if gateway.settings.store_backend == "s3":
        # The bucket judges its presigned URLs: an altered one is 403 there.
        signature = query["X-Amz-Signature"][0]
        altered = signature[:-2] + ("00" if signature[-2:] != "00" else "11")
        for attempt in (url.replace(signature, altered), url.replace(stored.object, other)):
            assert (await get(attempt))[0] == 403, attempt
        assert (await get(url))[0] == 200
        return
    base = f"{parts.scheme}://{parts.netloc}"
    signature, expires = query["signature"][0], query["expires"][0]
    forged = [
        url.replace(signature, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")),
        url.replace(f"expires={expires}", f"expires={int(expires) + 3600}"),
        url.replace(stored.object, other),
        f"{base}/o/{stored.object}",
        f"{base}/o/{stored.object}?expires={expires}",
        f"{base}/metrics",
        f"{base}/o/..%2f..%2f{stored.object}?expires={expires}&signature={signature}",
    ]
    for attempt in forged:
        assert await get(attempt) == (403, b""), attempt
    assert (await get(url))[0] == 200


async def test_retention_follows_the_client_within_the_operators_maximum(
    start: GatewayFactory, tmp_path: Path
) -> None:
    path, tokens = clients_file(
        tmp_path, short={"result_retention": "2h"}, long={"result_retention": "30d"}
    )
    gateway = await start(clients_file=path, store_max_retention_s=3 * 86400)
    for name, seconds in (("short", 7200), ("long", 3 * 86400)):
        caller = caller_of(gateway, tokens[name])
        async with caller.channel:
            stored = (await caller.generate(delivery=STORED)).images[0].stored
            quota = (await caller.quota()).storage
        assert quota.retention.ToTimedelta() == datetime.timedelta(seconds=seconds)
        retained = stored.retained_until.ToDatetime(datetime.UTC)
        expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        assert abs((retained - expected).total_seconds()) < 60


async def test_once_swept_an_object_is_gone_for_its_link_the_gateway_and_the_quota(
    start: GatewayFactory, tmp_path: Path
) -> None:
    path, tokens = clients_file(tmp_path, **TEAMS)
    gateway = await start(clients_file=path)
    caller = caller_of(gateway, tokens["team-a"])
    async with caller.channel:
        stored = (await caller.generate(n=2, delivery=STORED)).images[0].stored
        assert (await caller.quota()).storage.stored_objects == 2
        # Another process sweeps with the store's clock a retention later: a worker of
        # the same serve (the same data directory and its ledger), or another replica.
        database = await LocalDatabase.open(gateway.settings.data_dir, SCHEMA)
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
        other = await open_store(
            gateway.settings, ledger=LocalLedger(database), sweep=False, clock=lambda: later
        )
        try:
            swept = await other.store.sweep(100)
        finally:
            await other.aclose()
            await database.aclose()
        assert swept.objects >= 2
        storage = (await caller.quota()).storage
        assert (storage.stored_bytes, storage.stored_objects) == (0, 0)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.relink(stored.object)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert (await get(stored.url))[0] == 404
