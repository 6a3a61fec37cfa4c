"""The result store as the gateway uses it, on both backends (a local directory served
by its own link port, and a real S3-compatible server): what goes in comes back,
with its content type and the call's metadata, by reference and by a plain HTTP
link; large and streamed images; failed and stalled writes leave nothing; expired
results are swept and accounted for."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import obstore
import pytest
from store_support import BUCKET, Clock, s3_settings
from weed_support import WeedServer

from imagegate_server.errors import StoreUnavailable
from imagegate_server.settings import Settings
from imagegate_server.store import (
    CallInfo,
    Holding,
    MemoryLedger,
    ResultStore,
    RunningStore,
    StoreLimits,
    open_store,
)
from imagegate_server.store.objects import KEY_PATTERN, expiry_slot

DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
CALL = CallInfo(client="acme", model="gpt-image-2", request_id="req-1")
PNG = "image/png"


async def chunked(data: bytes | memoryview, size: int = 64 * 1024) -> AsyncIterator[memoryview]:
    """``data`` as the mapping stage hands it over while decoding: slices, no copies."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        await asyncio.sleep(0)
        yield view[start : start + size]


async def read_all(store: ResultStore, key: str) -> bytes:
    reader = await store.open(key)
    assert reader is not None
    async with reader:
        assert reader.object.key == key
        return b"".join([chunk async for chunk in reader.chunks()])


async def test_an_image_comes_back_with_its_content_type_and_the_calls_metadata(
    running: RunningStore,
) -> None:
    store = running.store
    call = CallInfo(client="acme", model="gpt-image-2", request_id="req-ü 42\n")
    stored = await store.put(b"\x89PNG fake", content_type=PNG, call=call, retention=DAY)

    found = await store.stat(stored.key)
    assert found is not None
    assert (found.size, found.content_type, found.client) == (9, PNG, "acme")
    # Caller-chosen values travel as ASCII (S3 metadata is HTTP headers), bounded.
    assert dict(found.metadata) == {
        "client": "acme",
        "model": "gpt-image-2",
        "request-id": "req-%C3%BC 42%0A",
    }
    assert abs(found.expires - stored.expires) < datetime.timedelta(seconds=1)
    assert await read_all(store, stored.key) == b"\x89PNG fake"


async def test_keys_are_random_carry_their_owner_and_sort_by_expiry(
    running: RunningStore,
) -> None:
    store = running.store
    stored = [await store.put(b"x", content_type=PNG, call=CALL, retention=DAY) for _ in range(20)]
    keys = {item.key for item in stored}
    assert len(keys) == 20
    for item in stored:
        match = KEY_PATTERN.fullmatch(item.key)
        assert match is not None, item.key
        assert match["client"] == "acme" and match["ext"] == ".png"
        assert len(set(match["token"])) > 4  # 128 random bits, not a counter
        slot = expiry_slot(item.expires)
        assert item.key.startswith(f"{slot:%Y-%m-%d}/{slot:%H%M}/")
    anonymous = await store.put(b"x", content_type="image/webp", call=CallInfo(None), retention=DAY)
    assert "/_anonymous/" in anonymous.key and anonymous.key.endswith(".webp")
    assert anonymous.client is None


async def test_four_real_size_images_go_in_as_decoded_and_come_out_by_plain_link(
    running: RunningStore,
    real_images: list[bytes],
    backend_settings: Settings,
    request: pytest.FixtureRequest,
) -> None:
    """n=4 at 1536x1024: written concurrently, chunk by chunk, fetched with httpx."""
    store = running.store
    assert all(len(image) > 2_000_000 for image in real_images)
    results = await asyncio.gather(
        *(
            store.store_image(chunked(image), content_type=PNG, call=CALL, retention=DAY)
            for image in real_images
        )
    )
    async with httpx.AsyncClient(timeout=30) as http:
        for image, result in zip(real_images, results, strict=True):
            assert result.object.size == len(image)
            answer = await http.get(result.link.url)
            assert answer.status_code == 200
            assert answer.headers["content-type"] == PNG
            assert int(answer.headers["content-length"]) == len(image)
            assert answer.content == image
    assert await store.ledger.holding("acme") == Holding(sum(map(len, real_images)), 4)
    if backend_settings.store_backend == "s3":  # each smaller than a part: one PUT each
        raw = request.getfixturevalue("weed").store(BUCKET)
        for result in results:
            head = await obstore.head_async(
                raw, backend_settings.store_s3_prefix + result.object.key
            )
            assert "-" not in str(head["e_tag"])


async def test_a_memoryview_is_stored_without_what_surrounds_it(running: RunningStore) -> None:
    buffer = bytearray(os.urandom(300_000))
    view = memoryview(buffer)[1000:250_000]
    stored = await running.store.put(view, content_type=PNG, call=CALL, retention=DAY)
    assert await read_all(running.store, stored.key) == bytes(view)


async def test_an_object_larger_than_a_part_goes_up_in_parts(
    backend_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """12 MiB in 5 MiB parts (S3's minimum): streamed, and whole on the way back."""
    settings = backend_settings.model_copy(update={"store_part_bytes": 5 * 1024 * 1024})
    running = await open_store(settings)
    try:
        data = os.urandom(12 * 1024 * 1024)
        stored = await running.store.put(
            chunked(data, 1024 * 1024), content_type="image/webp", call=CALL, retention=DAY
        )
        assert stored.size == len(data)
        assert await read_all(running.store, stored.key) == data
        whole = await running.store.put(data, content_type="image/webp", call=CALL, retention=DAY)
        assert await read_all(running.store, whole.key) == data
        if settings.store_backend == "s3":
            weed: WeedServer = request.getfixturevalue("weed")
            raw = weed.store(BUCKET)
            for key in (stored.key, whole.key):  # streamed, and from one buffer
                head = await obstore.head_async(raw, settings.store_s3_prefix + key)
                assert str(head["e_tag"]).strip('"').endswith("-3")  # three parts
    finally:
        await running.aclose()


async def test_a_source_that_fails_midway_leaves_nothing(running: RunningStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * (9 * 1024 * 1024)  # past a part: on S3, a multipart upload begun
        raise ValueError("the answer broke off")

    with pytest.raises(ValueError, match="broke off"):
        await running.store.put(broken(), content_type=PNG, call=CALL, retention=DAY)
    assert await running.store.backend.expired(_far_future(), 100) == []
    assert await running.store.ledger.holding("acme") == Holding()


async def test_a_stalled_write_times_out_and_leaves_nothing(running: RunningStore) -> None:
    stalled = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"a" * 100_000
        stalled.set()
        await asyncio.Event().wait()  # never
        yield b""

    store = ResultStore(
        running.store.backend, StoreLimits(write_timeout=datetime.timedelta(seconds=0.5))
    )
    with pytest.raises(StoreUnavailable) as raised:
        await store.put(stalls(), content_type=PNG, call=CALL, retention=DAY)
    assert stalled.is_set()
    assert (raised.value.kind, raised.value.operation) == ("timeout", "put")
    assert await store.backend.expired(_far_future(), 100) == []


async def test_writes_beyond_the_concurrency_bound_wait_for_a_slot(running: RunningStore) -> None:
    store = ResultStore(
        running.store.backend,
        StoreLimits(write_timeout=datetime.timedelta(seconds=60), max_concurrent_writes=1),
    )
    release = asyncio.Event()

    async def held() -> AsyncIterator[bytes]:
        yield b"first"
        await release.wait()

    first = asyncio.create_task(store.put(held(), content_type=PNG, call=CALL, retention=DAY))
    await asyncio.sleep(0.05)
    # The only slot is taken: the second write waits, and its timeout runs meanwhile.
    with pytest.raises(StoreUnavailable) as raised:
        await store.put(b"second", content_type=PNG, call=CALL, retention=DAY, timeout_s=0.5)
    assert raised.value.kind == "timeout"
    assert not first.done()
    release.set()
    assert (await first).size == 5
    assert (await store.put(b"third", content_type=PNG, call=CALL, retention=DAY)).size == 5


async def test_expired_results_are_swept_and_the_ledger_follows(
    running: RunningStore, clock: Clock
) -> None:
    ledger = MemoryLedger()
    store = ResultStore(running.store.backend, ledger=ledger, clock=clock)
    short = await store.put(b"a" * 10, content_type=PNG, call=CALL, retention=HOUR)
    long = await store.put(b"b" * 20, content_type=PNG, call=CALL, retention=3 * HOUR)
    other = await store.put(b"c" * 30, content_type=PNG, call=CallInfo("zeta"), retention=HOUR)
    assert await ledger.holding("acme") == Holding(30, 2)

    assert (await store.sweep(100)).objects == 0  # nothing has expired yet
    clock.advance(hours=2)
    swept = await store.sweep(100)
    assert (swept.objects, swept.size, swept.full) == (2, 40, False)
    assert await store.stat(short.key) is None and await store.stat(other.key) is None
    assert await store.stat(long.key) is not None
    assert await ledger.holding("acme") == Holding(20, 1)
    assert await ledger.holding("zeta") == Holding()


async def test_a_sweep_deletes_at_most_its_batch(running: RunningStore, clock: Clock) -> None:
    store = ResultStore(running.store.backend, clock=clock)
    for _ in range(5):
        await store.put(b"x", content_type=PNG, call=CALL, retention=HOUR)
    clock.advance(hours=2)
    first = await store.sweep(2)
    assert (first.objects, first.full) == (2, True)
    rest = await store.sweep(10)
    assert (rest.objects, rest.full) == (3, False)
    assert await store.backend.expired(_far_future(), 100) == []


async def test_delete_removes_the_object_and_its_share_of_the_ledger(
    running: RunningStore,
) -> None:
    store = running.store
    stored = await store.put(b"12345", content_type=PNG, call=CALL, retention=DAY)
    assert await store.delete(stored.key)
    assert await store.stat(stored.key) is None
    assert await store.open(stored.key) is None
    assert await store.ledger.holding("acme") == Holding()
    assert not await store.delete(stored.key)


async def test_what_is_not_one_of_our_keys_is_never_looked_up(running: RunningStore) -> None:
    for key in ("../../etc/passwd", "/etc/passwd", "2026-01-01/0000/acme/../x", ""):
        assert await running.store.stat(key) is None
        assert await running.store.open(key) is None


async def test_a_link_never_outlives_the_object(running: RunningStore) -> None:
    store = running.store
    stored = await store.put(b"x", content_type=PNG, call=CALL, retention=HOUR)
    link = await store.link(stored, datetime.timedelta(days=30))
    assert link.expires == stored.expires.replace(microsecond=0)  # whole seconds, never later
    short = await store.link(stored, datetime.timedelta(minutes=5))
    assert short.expires < stored.expires
    assert re.match(r"https?://", short.url)


async def test_a_presigned_link_lasts_at_most_seven_days(weed: WeedServer, tmp_path: Path) -> None:
    running = await open_store(s3_settings(weed, tmp_path))
    try:
        store = running.store
        stored = await store.put(b"x", content_type=PNG, call=CALL, retention=30 * DAY)
        link = await store.link(stored, datetime.timedelta(days=30))
        lifetime = link.expires - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(days=6.99) < lifetime <= datetime.timedelta(days=7)
        signed = re.search(r"X-Amz-Expires=(\d+)", link.url)
        assert signed is not None and 604_000 < int(signed[1]) <= 604_800
        assert "imagegate-test-secret" not in link.url  # a signature, not the credentials
    finally:
        await running.aclose()


async def test_an_expired_link_is_refused(running: RunningStore) -> None:
    store = running.store
    stored = await store.put(b"secret image", content_type=PNG, call=CALL, retention=DAY)
    # Five seconds: a link's expiry is whole seconds, and a SigV4 link's clock starts
    # at its signing time cut to the second, so a short link may be good for a second
    # less than asked (2 s failed once in CI: the first GET came too late).
    link = await store.link(stored, datetime.timedelta(seconds=5))
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(link.url)).status_code == 200
        await asyncio.sleep(6.2)  # past the link's expiry (S3 and our port use real time)
        answer = await http.get(link.url)
    assert answer.status_code == 403
    assert b"secret image" not in answer.content


def _far_future() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
