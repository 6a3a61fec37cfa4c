"""The upload spool as httpx encodes it: small files stay in memory, large ones on disk."""

from __future__ import annotations

import os

import httpx

from imagegate_server.gateway.requests.spool import Spool

THRESHOLD = 256 * 1024


def _spooled(data: bytes, chunk: int = 64 * 1024) -> Spool:
    spool = Spool(THRESHOLD)
    for offset in range(0, len(data), chunk):
        spool.write(data[offset : offset + chunk])
    return spool


def _multipart(spool: Spool) -> bytes:
    """The body httpx sends for one file part, read the way the upstream client reads it."""
    request = httpx.Request(
        "POST",
        "http://127.0.0.1/v1/images/edits",
        data={"prompt": "p"},
        files=[("image", ("in.png", spool.reader(), "image/png"))],
    )
    return request.read()


def test_a_file_under_the_threshold_stays_in_memory_while_httpx_encodes_it() -> None:
    data = os.urandom(THRESHOLD - 1)
    spool = _spooled(data)
    body = _multipart(spool)
    assert data in body
    assert not spool.on_disk
    spool.close()


def test_a_file_over_the_threshold_goes_to_disk_and_is_sent_whole() -> None:
    data = os.urandom(3 * THRESHOLD + 17)
    spool = _spooled(data)
    assert spool.on_disk
    assert data in _multipart(spool)
    spool.close()


def test_each_reader_starts_from_the_first_byte_so_a_retry_resends_everything() -> None:
    for size in (1000, 2 * THRESHOLD):
        data = os.urandom(size)
        spool = _spooled(data)
        first, second = _multipart(spool), _multipart(spool)
        assert data in first
        assert data in second
        spool.close()
