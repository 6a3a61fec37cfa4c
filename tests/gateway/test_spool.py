"""The upload spool: memory per call for all its files together, disk per client, files
in the spool directory that vanish with their call, and as httpx encodes them."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from support.descriptors import open_files_in

from imagegate_server.errors import LimitRefused, StartupError
from imagegate_server.gateway.requests.spool import CallSpool, DiskQuota, Spool
from imagegate_server.gateway.requests.spool_directory import PREFIX, SpoolDirectory

THRESHOLD = 256 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def directory(tmp_path: Path) -> SpoolDirectory:
    return SpoolDirectory.prepare(tmp_path / "spool")


def _write(spool: Spool, data: bytes) -> Spool:
    for offset in range(0, len(data), CHUNK):
        spool.write(data[offset : offset + CHUNK])
    return spool


def _spooled(data: bytes, directory: SpoolDirectory | None = None) -> Spool:
    return _write(CallSpool(THRESHOLD, directory, None).file(), data)


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


def test_a_file_over_the_threshold_goes_to_disk_and_is_sent_whole(
    directory: SpoolDirectory,
) -> None:
    data = os.urandom(3 * THRESHOLD + 17)
    spool = _spooled(data, directory)
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


def test_the_threshold_bounds_all_files_of_a_call_together(directory: SpoolDirectory) -> None:
    # 16 files, each under the threshold alone: together they may not all stay in
    # memory (before, each file had a threshold of its own: 16 x the memory).
    call = CallSpool(THRESHOLD, directory, None)
    files = [os.urandom(THRESHOLD - 1000) for _ in range(16)]
    spools = []
    for data in files:
        spools.append(_write(call.file(), data))
        assert call.in_memory <= THRESHOLD
    assert sum(not spool.on_disk for spool in spools) == 1
    kept = sum(len(d) for d, s in zip(files, spools, strict=True) if not s.on_disk)
    assert call.in_memory == kept
    for data, spool in zip(files, spools, strict=True):
        assert data in _multipart(spool)  # whole, wherever it waited
        spool.close()
    assert call.in_memory == 0


def test_spool_files_are_unlinked_in_the_spool_directory_and_gone_when_closed(
    directory: SpoolDirectory,
) -> None:
    spool = _spooled(os.urandom(2 * THRESHOLD), directory)
    (target,) = open_files_in(directory.path)
    assert target.endswith("(deleted)")  # no name: nothing to leave behind
    assert list(directory.path.iterdir()) == []
    spool.close()
    assert list(open_files_in(directory.path)) == []


def test_a_client_past_its_disk_cap_is_refused_and_a_closed_call_gives_its_share_back(
    directory: SpoolDirectory,
) -> None:
    heard: list[int] = []
    quota = DiskQuota(heard.append)
    cap = 3 * THRESHOLD
    first = CallSpool(THRESHOLD, directory, quota.account("team-a", cap))
    _write(first.file(), os.urandom(2 * THRESHOLD))
    assert quota.held("team-a") == 2 * THRESHOLD
    second = CallSpool(THRESHOLD, directory, quota.account("team-a", cap))
    spool = second.file()
    with pytest.raises(LimitRefused) as refused:
        _write(spool, os.urandom(2 * THRESHOLD))
    assert refused.value.limit == "max_spooled_bytes"
    assert refused.value.client == "team-a"
    assert not refused.value.permanent  # it passes once the first call ends
    # Another client has a quota of its own.
    other = CallSpool(THRESHOLD, directory, quota.account("team-b", cap))
    _write(other.file(), os.urandom(2 * THRESHOLD))
    other.close()
    spool.close()
    second.close()
    first.close()
    assert quota.held("team-a") == 0
    assert quota.total == 0
    assert heard[-1] == 0 and max(heard) == 5 * THRESHOLD  # 3 of team-a, 2 of team-b


def test_declared_sizes_are_reserved_up_front_and_a_call_alone_over_the_cap_never_passes(
    directory: SpoolDirectory,
) -> None:
    quota = DiskQuota()
    call = CallSpool(THRESHOLD, directory, quota.account("team-a", 10 * THRESHOLD))
    call.reserve(4 * THRESHOLD)
    assert quota.held("team-a") == 4 * THRESHOLD
    _write(call.file(), os.urandom(4 * THRESHOLD))  # within what it reserved
    assert quota.held("team-a") == 4 * THRESHOLD
    small = CallSpool(THRESHOLD, directory, quota.account("team-a", 10 * THRESHOLD))
    small.reserve(THRESHOLD)  # fits in memory: nothing to reserve
    assert quota.held("team-a") == 4 * THRESHOLD
    huge = CallSpool(THRESHOLD, directory, quota.account("team-a", 10 * THRESHOLD))
    with pytest.raises(LimitRefused) as refused:
        huge.reserve(11 * THRESHOLD)
    assert refused.value.permanent
    call.close()
    assert quota.held("team-a") == 0


def test_a_cap_of_zero_keeps_every_upload_in_memory_or_refuses_it(
    directory: SpoolDirectory,
) -> None:
    quota = DiskQuota()
    call = CallSpool(THRESHOLD, directory, quota.account("team-a", 0))
    _write(call.file(), os.urandom(THRESHOLD))
    with pytest.raises(LimitRefused):
        _write(call.file(), os.urandom(CHUNK))
    call.close()


def test_start_removes_old_leftovers_only(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    path.mkdir()
    old, fresh, foreign = path / f"{PREFIX}old", path / f"{PREFIX}fresh", path / "notes.txt"
    for file in (old, fresh, foreign):
        file.write_bytes(b"x" * 100)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(foreign, (an_hour_ago, an_hour_ago))
    SpoolDirectory.prepare(path)
    # A fresh one may be a sibling worker's, between its creation and its unlink.
    assert sorted(p.name for p in path.iterdir()) == [f"{PREFIX}fresh", "notes.txt"]


def test_the_default_directory_is_private_and_no_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    default = tmp_path / f"imagegate-spool-{os.getuid()}"
    directory = SpoolDirectory.prepare(None)
    assert directory.path == default
    assert default.stat().st_mode & 0o777 == 0o700
    default.rmdir()
    (tmp_path / "elsewhere").mkdir()
    default.symlink_to(tmp_path / "elsewhere")  # planted by someone else
    with pytest.raises(StartupError, match="not a directory"):
        SpoolDirectory.prepare(None)


def test_a_directory_that_cannot_be_made_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StartupError, match="IMAGEGATE_SPOOL_DIR"):
        SpoolDirectory.prepare(tmp_path / "file" / "spool")


def test_a_spool_directory_removed_while_serving_is_made_again(
    directory: SpoolDirectory,
) -> None:
    directory.path.rmdir()
    spool = _spooled(os.urandom(2 * THRESHOLD), directory)
    assert spool.on_disk and directory.path.is_dir()
    spool.close()
