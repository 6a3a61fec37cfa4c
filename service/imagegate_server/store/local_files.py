"""The local store's files: how an object's bytes and its sidecar are written so that
a crash or a cancellation never leaves a visible half, and how they are removed.

The sidecar (``<object>.meta``, JSON) holds the content type, the exact expiry and
the call's metadata. Every call here blocks: run it in a thread (:func:`blocking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import functools
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from imagegate_server.store.backend import Attributes
from imagegate_server.uninterrupted import to_its_end

SIDECAR = ".meta"
T = TypeVar("T")


async def blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function`` in a thread; if the caller is cancelled meanwhile, the thread's
    call still finishes before the cancellation goes on, so cleanup never closes a
    descriptor that a thread is writing to (its number could be reused)."""
    call = functools.partial(function, *args, **kwargs)
    return await to_its_end(asyncio.get_running_loop().run_in_executor(None, call))


def read_attributes(path: Path) -> Attributes:
    """The sidecar of the object at ``path`` (raises OSError when it is unreadable)."""
    try:
        data = json.loads(sidecar(path).read_bytes())
        return Attributes(
            content_type=str(data["content_type"]),
            expires=datetime.datetime.fromisoformat(data["expires"]),
            metadata={str(k): str(v) for k, v in dict(data.get("metadata", {})).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise OSError(errno.EIO, "unreadable sidecar") from None


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)


# One write() at most this large: measured on ext4 (Linux 6, a VM), a 2.5 MB image
# written in one call cost 3.5 ms of CPU, in 1 MiB calls 0.5 ms.
WRITE_BYTES = 1024 * 1024


def write_all(descriptor: int, chunk: bytes | bytearray | memoryview) -> int:
    view = memoryview(chunk).cast("B")
    written = 0
    while written < len(view):
        written += os.write(descriptor, view[written : written + WRITE_BYTES])
    return written


def close_synced(descriptor: int) -> None:
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_temporary(path: Path, temporary: Path) -> int:
    """The hidden temporary file an object at ``path`` is written to (its directory
    made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return create(temporary)


def publish(
    descriptor: int, temporary: Path, path: Path, size: int, attributes: Attributes
) -> None:
    """Flush and close the object's temporary file (closed whatever happens), write its
    sidecar, and make it visible at ``path`` with one rename."""
    close_synced(descriptor)
    write_sidecar(sidecar(path), size, attributes)
    os.rename(temporary, path)


def write_whole(
    path: Path, temporary: Path, data: bytes | bytearray | memoryview, attributes: Attributes
) -> int:
    """An object whose bytes are all here, in one call (one thread hop)."""
    descriptor = open_temporary(path, temporary)
    try:
        size = write_all(descriptor, data)
    except BaseException:
        close_quietly(descriptor)
        raise
    publish(descriptor, temporary, path, size, attributes)
    return size


def close_quietly(descriptor: int) -> None:
    with contextlib.suppress(OSError):
        os.close(descriptor)


def write_sidecar(path: Path, size: int, attributes: Attributes) -> None:
    body = json.dumps(
        {
            "content_type": attributes.content_type,
            "size": size,
            "expires": attributes.expires.isoformat(),
            "metadata": dict(attributes.metadata),
        }
    ).encode()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = create(temporary)
    try:
        write_all(descriptor, body)
    finally:
        os.close(descriptor)
    os.rename(temporary, path)


def delete_files(root: Path, paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        sidecar(path).unlink(missing_ok=True)
        remove_empty(path.parent, root)


def remove_empty(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its parents up to ``root`` while they are empty."""
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or already gone, or another sweep's): stop here
        directory = directory.parent


def error_kind(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "denied"
    return "io"
