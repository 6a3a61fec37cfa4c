"""The embedded store: a directory, one file per object and a JSON sidecar beside it
(``<key>.meta``: content type, expiry, the call's metadata), so a single replica
needs nothing else. Its links are served by :mod:`.link_server`.

A write goes to a hidden temporary file in the object's directory (flushed to
disk), then the sidecar, then one ``rename``: the object is visible whole or not
at all, and a failed write removes what it made. The file system's calls run in
threads, so the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from imagegate_server.errors import StoreUnavailable
from imagegate_server.store.backend import Attributes, Listed, Source
from imagegate_server.store.local_files import (
    SIDECAR,
    blocking,
    close_quietly,
    delete_files,
    error_kind,
    open_temporary,
    publish,
    read_attributes,
    remove_empty,
    sidecar,
    write_all,
    write_whole,
)
from imagegate_server.store.objects import DAY_PATTERN, is_key, slot_time
from imagegate_server.store.signing import LinkSigner

READ_CHUNK = 256 * 1024
INLINE_WRITE_BYTES = 64
"""Pieces this small are written on the event loop: a few bytes reach the page cache
in microseconds, while a thread hop costs about 90 us of CPU (measured), and
decoding an answer as it streams makes a 3-byte piece at each chunk boundary
(the base64 group the chunk cut in two): half the pieces of a call."""
_HHMM = re.compile(r"\d{4}")
# Links are signed by the gateway, so their lifetime has no backend maximum; a
# link never outlives its object's retention anyway (see ResultStore.link).
_NO_MAXIMUM = datetime.timedelta(days=365)


class LocalBackend:
    name = "local"
    max_link_lifetime = _NO_MAXIMUM

    def __init__(self, root: Path, signer: LinkSigner, *, stale_after: datetime.timedelta):
        self.root = root
        self.base_url = ""
        """Where links point (set once the link server knows its port)."""
        self._signer = signer
        self._stale_after = stale_after

    def path(self, key: str) -> Path | None:
        """The file of ``key``, or None for anything that is not one of our keys (the
        key pattern admits no ``..``, no leading ``/`` and no empty segment)."""
        return self.root / key if is_key(key) else None

    async def write(self, key: str, source: Source, attributes: Attributes) -> int:
        path = self._path(key)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        descriptor: int | None = None
        try:
            if isinstance(source, bytes | bytearray | memoryview):
                # All of it at once: one thread hop (each costs about 90 us of CPU).
                return await blocking(write_whole, path, temporary, source, attributes)
            descriptor = await blocking(open_temporary, path, temporary)
            size = 0
            async for chunk in source:
                if len(chunk) <= INLINE_WRITE_BYTES:
                    size += write_all(descriptor, chunk)  # see INLINE_WRITE_BYTES
                else:
                    size += await blocking(write_all, descriptor, chunk)
            closing, descriptor = descriptor, None  # publish closes it, whatever happens
            await blocking(publish, closing, temporary, path, size, attributes)
            return size
        except BaseException as error:
            # Cancelled (a timeout) or failed: nothing stays visible. The key is new
            # and ours alone, so the object itself goes too (a cancellation can
            # arrive just after its rename).
            if descriptor is not None:
                close_quietly(descriptor)
            for leftover in (temporary, sidecar(path), path):
                # The directory itself may be what failed (gone, or not a directory).
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise StoreUnavailable(error_kind(error)) from None
            raise

    async def head(self, key: str) -> tuple[int, Attributes] | None:
        path = self.path(key)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(_head, path)
        except OSError as error:
            raise StoreUnavailable(error_kind(error), "get") from None

    async def open(self, key: str) -> LocalObject | None:
        path = self.path(key)
        if path is None:
            return None
        future = asyncio.get_running_loop().run_in_executor(None, _open, path)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_close_abandoned)  # the caller left: close it
            raise
        except OSError as error:
            raise StoreUnavailable(error_kind(error), "get") from None

    async def sign(self, key: str, expires: datetime.datetime) -> str:
        return self._signer.url(self.base_url, key, expires)

    async def delete(self, keys: Sequence[str]) -> None:
        paths = [path for path in map(self.path, keys) if path is not None]
        try:
            await asyncio.to_thread(delete_files, self.root, paths)
        except OSError as error:
            raise StoreUnavailable(error_kind(error), "delete") from None

    async def expired(self, now: datetime.datetime, limit: int) -> list[Listed]:
        try:
            return await asyncio.to_thread(self._expired, now, limit)
        except OSError as error:
            raise StoreUnavailable(error_kind(error), "list") from None

    async def aclose(self) -> None:
        pass

    def _path(self, key: str) -> Path:
        path = self.path(key)
        if path is None:  # keys come from new_key: a programming error
            raise ValueError("not a store key")
        return path

    def _expired(self, now: datetime.datetime, limit: int) -> list[Listed]:
        """Walks expiry slots in order (date, then minute) until one is in the future."""
        found: list[Listed] = []
        for day in _entries(self.root, DAY_PATTERN):
            for minute in _entries(day, _HHMM):
                slot = slot_time(day.name, minute.name)
                if slot is None:
                    continue  # not one of ours
                if slot > now:
                    return found
                for client in _entries(minute):
                    found.extend(self._objects(client, limit - len(found), now))
                    if len(found) >= limit:
                        return found
        return found

    def _objects(self, client: Path, limit: int, now: datetime.datetime) -> list[Listed]:
        """The objects of one client in an expired slot; removes what crashed writes
        left (temporary files older than any write, sidecars without an object)."""
        found: list[Listed] = []
        stale = (now - self._stale_after).timestamp()
        for entry in _entries(client):
            key = entry.relative_to(self.root).as_posix()
            try:
                if is_key(key):
                    found.append(Listed(key, entry.stat().st_size))
                    if len(found) >= limit:
                        break
                elif _abandoned(entry, stale):
                    entry.unlink()
            except FileNotFoundError:
                continue  # deleted meanwhile (another process's sweep)
        remove_empty(client, self.root)
        return found


class LocalObject:
    """An open local object (the link server serves files itself, by path)."""

    def __init__(self, handle: int, size: int, attributes: Attributes) -> None:
        self.handle: int | None = handle
        self.size = size
        self.attributes = attributes

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while self.handle is not None:
                chunk = await blocking(os.read, self.handle, READ_CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            close_quietly(handle)


def _abandoned(entry: Path, stale: float) -> bool:
    """What a crashed write left, older than any write can last: a temporary file, or
    a sidecar without its object (a live write renames its sidecar first)."""
    if entry.name.endswith(".tmp"):
        return entry.stat().st_mtime < stale
    if entry.name.endswith(SIDECAR) and not entry.with_suffix("").exists():
        return entry.stat().st_mtime < stale
    return False


def _head(path: Path) -> tuple[int, Attributes] | None:
    try:
        size = path.stat().st_size
        return size, read_attributes(path)
    except FileNotFoundError:
        return None


def _open(path: Path) -> LocalObject | None:
    try:
        handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return LocalObject(handle, os.fstat(handle).st_size, read_attributes(path))
    except BaseException:
        os.close(handle)
        raise


def _close_abandoned(future: asyncio.Future[LocalObject | None]) -> None:
    opened = None if future.cancelled() or future.exception() else future.result()
    if opened is not None and opened.handle is not None:
        close_quietly(opened.handle)


def _entries(parent: Path, name: re.Pattern[str] | None = None) -> list[Path]:
    """The entries of ``parent`` in name order (the sub-directories named like
    ``name``, when given); none when it is gone."""
    try:
        entries = list(parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    if name is not None:
        entries = [entry for entry in entries if name.fullmatch(entry.name) and entry.is_dir()]
    return sorted(entries)
