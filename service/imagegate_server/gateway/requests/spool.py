"""Where an upload's bytes wait for the upstream call: memory, then disk, both bounded.

Memory
    One call holds at most its threshold (``IMAGEGATE_SPOOL_THRESHOLD_BYTES``) of
    upload bytes in memory, all its files together (:class:`CallSpool`): a file stays
    in memory while its bytes fit in what the call has left; the file that does not
    fit moves to disk whole, and so do the files after it once the threshold is
    spent. Nothing else of a file is kept aside: its header is read back from the
    spool when the file is judged.
Disk
    What one client's calls hold on disk is at most its policy's ``max_spooled_bytes``
    (:class:`DiskQuota`); past it a call is refused with RESOURCE_EXHAUSTED. A call
    that declares its files' sizes reserves their total before its go-ahead, so the
    refusal comes before any file byte is sent; undeclared bytes reserve as they
    arrive. The count is per process: each worker of a ``serve`` counts its own calls
    (one host holds at most workers x the cap per client), since a count shared by
    processes would cost a lock or a store round trip per spooled chunk, and what it
    protects, the disk and the page cache, is bounded per host by that product anyway.
Files
    On disk, bytes wait in unlinked files of the spool directory
    (:mod:`.spool_directory`): closing them when the call ends, however it ends,
    frees their space, and so does the process dying.

Not ``tempfile.SpooledTemporaryFile``: httpx sizes a multipart file with
``os.fstat(file.fileno())`` when it can, and on a SpooledTemporaryFile ``fileno()``
moves the bytes to disk, so every small upload would be written out just before
it is sent. Here bytes in memory are read through a ``BytesIO``, whose ``fileno()`` raises,
so httpx measures it with seek/tell and it stays in memory.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from typing import IO

from imagegate_server.errors import LimitRefused
from imagegate_server.gateway.requests.spool_directory import PREFIX, SpoolDirectory

SPOOL_QUOTA = "max_spooled_bytes"
"""The QuotaFailure ``quota_id`` (and policy field) of the per-client disk cap."""


class DiskQuota:
    """Bytes each client's calls hold in spool files, in this process."""

    def __init__(self, observe: Callable[[int], None] | None = None) -> None:
        self._held: dict[str, int] = {}
        self.total = 0
        """Bytes every call of this process holds on disk (or has reserved)."""
        self._observe = observe

    def account(self, client: str, cap: int | None) -> DiskAccount:
        """One call's share of ``client``'s quota (``cap`` None: unlimited)."""
        return DiskAccount(self, client, cap)

    def held(self, client: str) -> int:
        return self._held.get(client, 0)

    def _take(self, account: DiskAccount, count: int) -> None:
        client, cap = account.client, account.cap
        held = self._held.get(client, 0)
        if cap is not None and held + count > cap:
            raise _refused(client, cap, account.held + count)
        self._held[client] = held + count
        self._changed(count)

    def _give_back(self, client: str, count: int) -> None:
        left = self._held.get(client, 0) - count
        if left > 0:
            self._held[client] = left
        else:
            self._held.pop(client, None)
        self._changed(-count)

    def _changed(self, count: int) -> None:
        self.total += count
        if self._observe is not None:
            self._observe(self.total)


class DiskAccount:
    """One call's spooled bytes, reserved from its client's quota and released once."""

    def __init__(self, quota: DiskQuota, client: str, cap: int | None) -> None:
        self._quota = quota
        self.client = client
        self.cap = cap
        self.held = 0

    def reserve(self, count: int) -> None:
        """Raises :class:`LimitRefused` when the client's calls would hold over its cap."""
        if count > 0:
            self._quota._take(self, count)
            self.held += count

    def release(self) -> None:
        if self.held:
            self._quota._give_back(self.client, self.held)
            self.held = 0


def _refused(client: str, cap: int, needed: int) -> LimitRefused:
    who = f"for client {client[:100]!r}"
    text = f"{SPOOL_QUOTA}: {cap} bytes of uploads waiting on disk at once {who}"
    permanent = needed > cap
    if permanent:
        text += f"; this call alone needs {needed}, so it can never pass"
    else:
        text += "; retry when one of its uploads ends"
    return LimitRefused(SPOOL_QUOTA, text, client=client, retry_after_s=None, permanent=permanent)


class CallSpool:
    """The files of one call: at most ``memory_limit`` bytes in memory, all files
    together; the rest on disk, reserved from the call's :class:`DiskAccount`.

    The memory budget is spent once: a file that moves to disk does not give its
    share back to the files after it, so a call of many files spills once instead of
    filling and freeing a threshold's worth of memory per file (churn that raised
    the process's peak by about that much per call in flight)."""

    def __init__(
        self, memory_limit: int, directory: SpoolDirectory | None, account: DiskAccount | None
    ) -> None:
        self.memory_limit = memory_limit
        self._directory = directory
        self._account = account
        self.memory_spent = 0
        """Bytes ever kept in memory (never above ``memory_limit``)."""
        self.in_memory = 0
        """Bytes in memory now."""
        self.on_disk = 0

    def file(self) -> Spool:
        return Spool(self)

    def reserve(self, count: int) -> None:
        """Reserve disk for ``count`` bytes ahead (what an upload declares)."""
        if self._account is not None and count > self.memory_limit:
            self._account.reserve(count - self._account.held)

    def _disk(self, count: int) -> None:
        """Account ``count`` more bytes on disk (beyond what is reserved already)."""
        account = self._account
        if account is not None:
            account.reserve(self.on_disk + count - account.held)
        self.on_disk += count

    def _new_file(self) -> IO[bytes]:
        if self._directory is None:
            return tempfile.TemporaryFile(prefix=PREFIX)
        return self._directory.new_file()

    def close(self) -> None:
        if self._account is not None:
            self._account.release()


class Spool:
    """One file's bytes: in memory while its call has room there, else on disk.

    In memory they are the received chunks themselves, kept in a list (no copy, and
    no buffer that regrows as they arrive), joined once when the file is read."""

    def __init__(self, call: CallSpool) -> None:
        self._call = call
        self._pieces: list[bytes] = []
        self._joined: io.BytesIO | None = None
        self._disk: IO[bytes] | None = None
        self._size = 0

    @property
    def on_disk(self) -> bool:
        """Whether the bytes went to a spool file."""
        return self._disk is not None

    def write(self, data: bytes) -> None:
        # Synchronous on purpose: a 64 KiB write lands in the page cache in tens of
        # microseconds, less than handing it to a thread would cost.
        call = self._call
        if self._disk is None:
            if call.memory_spent + len(data) <= call.memory_limit:
                self._pieces.append(data)
                self._size += len(data)
                call.memory_spent += len(data)
                call.in_memory += len(data)
                return
            self._disk = self._move_to_disk()
        call._disk(len(data))
        self._disk.write(data)
        self._size += len(data)

    def _move_to_disk(self) -> IO[bytes]:
        call = self._call
        call._disk(self._size)  # first: a refusal leaves the file as it was
        disk = call._new_file()
        disk.writelines(self._pieces)
        self._pieces = []
        call.in_memory -= self._size
        return disk

    def head(self, count: int) -> bytes:
        """The first ``count`` bytes (all of them, for a shorter file)."""
        if self._disk is not None:
            self._disk.flush()
            return os.pread(self._disk.fileno(), count, 0)  # leaves the position alone
        if self._joined is not None:
            with self._joined.getbuffer() as view:
                return bytes(view[:count])
        head = bytearray()
        for piece in self._pieces:
            head += piece[: count - len(head)]
            if len(head) == count:
                break
        return bytes(head)

    def reader(self) -> IO[bytes]:
        """The bytes from the start (each call rewinds, so a retry resends them all)."""
        file: IO[bytes]
        if self._disk is not None:
            file = self._disk
        else:
            if self._joined is None:
                # Joined once, on the first read (the upstream request), replacing
                # the pieces.
                self._joined = io.BytesIO(b"".join(self._pieces))
                self._pieces = []
            file = self._joined
        file.seek(0)
        return file

    def close(self) -> None:
        if self._disk is None:
            self._call.in_memory -= self._size
            self._size = 0
        self._pieces = []
        for file in (self._joined, self._disk):
            if file is not None:
                file.close()
