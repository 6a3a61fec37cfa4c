"""The local store's link port and signing key: a valid link serves the image (with
its content type, length, ranges), anything else gets 403 and no body; the key is
generated once, private, and shared by every process on the data directory."""

from __future__ import annotations

import asyncio
import datetime
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from store_support import store_settings

from imagegate_server.errors import StartupError
from imagegate_server.store import CallInfo, RunningStore, StoredImage, open_store
from imagegate_server.store.signing import KEY_FILE, LinkSigner, signing_key

DAY = datetime.timedelta(days=1)
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
CALL = CallInfo(client="acme", model="gpt-image-2", request_id="r1")


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[RunningStore]:
    running = await open_store(store_settings("local", tmp_path))
    yield running
    await running.aclose()


@pytest.fixture
async def stored(local: RunningStore) -> StoredImage:
    return await local.store.store_image(IMAGE, content_type="image/png", call=CALL, retention=DAY)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def _parts(url: str) -> tuple[str, str, str, str]:
    """origin, key, expires, signature of a link."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return (
        f"{parts.scheme}://{parts.netloc}",
        parts.path.removeprefix("/o/"),
        query["expires"][0],
        query["signature"][0],
    )


async def test_a_link_serves_the_image_with_its_headers(
    stored: StoredImage, http: httpx.AsyncClient
) -> None:
    answer = await http.get(stored.link.url)
    assert answer.status_code == 200
    assert answer.content == IMAGE
    assert answer.headers["content-type"] == "image/png"
    assert int(answer.headers["content-length"]) == len(IMAGE)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"].startswith("private, max-age=")
    assert "server" not in answer.headers

    partial = await http.get(stored.link.url, headers={"Range": "bytes=8-15"})
    assert partial.status_code == 206
    assert partial.content == IMAGE[8:16]
    head = await http.head(stored.link.url)
    assert head.status_code == 200 and head.content == b""


async def test_links_to_other_keys_or_other_times_are_refused(
    local: RunningStore, stored: StoredImage, http: httpx.AsyncClient
) -> None:
    other = await local.store.store_image(
        b"someone else's", content_type="image/png", call=CallInfo("zeta"), retention=DAY
    )
    origin, key, expires, signature = _parts(stored.link.url)
    _, other_key, other_expires, _ = _parts(other.link.url)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    refused = [
        f"{origin}/o/{key}?expires={expires}&signature={flipped}",  # forged
        f"{origin}/o/{other_key}?expires={expires}&signature={signature}",  # another key
        f"{origin}/o/{key}?expires={int(expires) + 3600}&signature={signature}",  # later
        f"{origin}/o/{key}?expires={other_expires}x&signature={signature}",
        f"{origin}/o/{key}?expires={expires}",  # unsigned
        f"{origin}/o/{key}?signature={signature}",
        f"{origin}/o/{key}?expires={expires}&signature={signature}&signature={signature}",
        f"{origin}/o/{key}?expires=-1&signature={signature}",
        f"{origin}/o/{key}",
        f"{origin}/",
        f"{origin}/metrics",
        f"{origin}/o/../../{KEY_FILE}?expires={expires}&signature={signature}",
        f"{origin}/o/%2e%2e/%2e%2e/{KEY_FILE}?expires={expires}&signature={signature}",
        f"{origin}/o/{key.replace('/', '%2F')}?expires={expires}&signature={signature}",
    ]
    for url in refused:
        answer = await http.get(url)
        assert (answer.status_code, answer.content) == (403, b""), url
    for method in ("POST", "PUT", "DELETE"):
        answer = await http.request(method, stored.link.url)
        assert (answer.status_code, answer.content) == (403, b""), method
    # The genuine link still works.
    assert (await http.get(stored.link.url)).content == IMAGE


async def test_raw_traversal_attempts_get_403(stored: StoredImage) -> None:
    """Paths sent byte for byte (an HTTP client would normalise ``..`` away)."""
    origin, key, expires, signature = _parts(stored.link.url)
    host, port = urlsplit(origin).hostname, urlsplit(origin).port
    for path in (
        f"/o/../{KEY_FILE}?expires={expires}&signature={signature}",
        f"/o/{key}/../../../../{KEY_FILE}?expires={expires}&signature={signature}",
        f"/o//etc/passwd?expires={expires}&signature={signature}",
    ):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403"), (path, head)
        assert body == b"", path


async def test_an_expired_link_gets_403_and_no_body(
    local: RunningStore, stored: StoredImage, http: httpx.AsyncClient
) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    expired = await local.store.backend.sign(stored.object.key, past)
    answer = await http.get(expired)
    assert (answer.status_code, answer.content) == (403, b"")


async def test_a_link_to_a_deleted_object_gets_404(
    local: RunningStore, stored: StoredImage, http: httpx.AsyncClient
) -> None:
    assert await local.store.delete(stored.object.key)
    answer = await http.get(stored.link.url)
    assert (answer.status_code, answer.content) == (404, b"")


def test_a_write_failing_on_disk_is_store_unavailable_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """A file-size limit makes the disk refuse the write halfway (a full disk, as a
    process sees it); run in a child, since the limit is its whole process's."""
    script = f"""
import asyncio, datetime, resource, signal, sys
from pathlib import Path
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parent.parent)!r}]
from store_support import store_settings
from imagegate_server.errors import StoreUnavailable
from imagegate_server.store import CallInfo, open_store

async def main():
    running = await open_store(store_settings("local", Path({str(tmp_path)!r})))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))
    async def chunks():
        for _ in range(40):
            yield b"x" * 65536
    try:
        await running.store.put(chunks(), content_type="image/png",
                                call=CallInfo("acme"), retention=datetime.timedelta(days=1))
    except StoreUnavailable as error:
        print("unavailable", error.kind)
    await running.aclose()

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "unavailable io", done.stderr[-2000:]
    results = tmp_path / "data" / "results"
    leftovers = [path for path in results.rglob("*") if path.is_file()]
    assert leftovers == []


def test_the_signing_key_is_made_once_private_and_shared(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = (
        "import sys; from pathlib import Path; "
        "from imagegate_server.store.signing import signing_key; "
        "sys.stdout.write(signing_key(None, Path(sys.argv[1])).decode())"
    )
    # Workers start together: all of them end up with the first key written.
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(data)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = {child.communicate(timeout=120)[0] for child in children}
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) >= 32
    path = data / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key(None, data).decode() == key  # a restart reads it back
    assert [p.name for p in data.iterdir()] == [KEY_FILE]  # no temporary files left


def test_a_configured_key_is_used_and_a_short_one_refused(tmp_path: Path) -> None:
    assert signing_key("k" * 40, tmp_path / "unused") == b"k" * 40
    assert not (tmp_path / "unused").exists()
    with pytest.raises(StartupError, match="at least 32 bytes"):
        LinkSigner(b"short")


async def test_links_of_one_key_do_not_verify_under_another(tmp_path: Path) -> None:
    first = await open_store(store_settings("local", tmp_path, store_signing_key="a" * 40))
    try:
        stored = await first.store.store_image(
            IMAGE, content_type="image/png", call=CALL, retention=DAY
        )
    finally:
        await first.aclose()
    second = await open_store(store_settings("local", tmp_path, store_signing_key="b" * 40))
    try:
        # Same directory, new key: the old link (re-pointed at the new port) is refused.
        _, key, expires, signature = _parts(stored.link.url)
        url = f"http://127.0.0.1:{second.link_port}/o/{key}?expires={expires}&signature={signature}"
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(url)
        assert (answer.status_code, answer.content) == (403, b"")
        fresh = await second.store.link(stored.object)
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(fresh.url)).content == IMAGE
    finally:
        await second.aclose()


async def test_links_use_the_public_url_when_one_is_set(tmp_path: Path) -> None:
    running = await open_store(
        store_settings("local", tmp_path, store_public_url="https://images.example.com/")
    )
    try:
        stored = await running.store.store_image(
            IMAGE, content_type="image/png", call=CALL, retention=DAY
        )
        assert stored.link.url.startswith("https://images.example.com/o/")
    finally:
        await running.aclose()


def test_the_store_directory_defaults_under_the_data_directory(tmp_path: Path) -> None:
    settings = store_settings("local", tmp_path)
    assert settings.store_directory() == tmp_path / "data" / "results"
    moved = store_settings("local", tmp_path, store_dir=tmp_path / "elsewhere")
    assert moved.store_directory() == tmp_path / "elsewhere"
    assert os.fspath(store_settings("local", tmp_path, data_dir="data").store_directory()) == (
        os.path.join("data", "results")
    )


async def test_a_sweep_clears_what_crashed_writes_left(local: RunningStore) -> None:
    root = local.store.backend.root  # type: ignore[attr-defined]
    slot = root / "2020-01-01" / "0000" / "acme"
    slot.mkdir(parents=True)
    leftovers = [slot / f".{'a' * 32}.png.1a2b3c.tmp", slot / f"{'b' * 32}.png.meta"]
    for path in leftovers:
        path.write_bytes(b"half")
        os.utime(path, (1_577_836_800, 1_577_836_800))  # 2020
    swept = await local.store.sweep(10)
    assert swept.objects == 0  # not objects: nothing to account for
    assert not (root / "2020-01-01").exists()
