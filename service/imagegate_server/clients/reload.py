"""The live clients file: loaded at start, re-read when it changes, swapped atomically.

Change detection is a ``stat`` of the path every ``reload_s`` seconds, following
symlinks, comparing (device, inode, size, mtime). That sees an editor's in-place
write, the CLI's rename, and Kubernetes' Secret/ConfigMap update, where the kubelet
writes a new ``..2026_...`` directory and swaps the ``..data`` symlink in one
rename (the mounted file is a symlink through ``..data``, so its inode changes).
A Secret mounted with ``subPath`` never receives updates: mount the whole volume.

A version that fails to load keeps the last good registry and logs one error, once
per version (not per poll); the next good version logs "clients file reloaded".
Write the file atomically (rename a new file over it, as the CLI and the kubelet
do): a rewrite in place can be read half-written, which is reported as a bad
version (an empty file at reload included) until the write completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType

from imagegate_server.clients.fileformat import ClientsFileError, load
from imagegate_server.clients.registry import ClientRegistry
from imagegate_server.errors import StartupError
from imagegate_server.settings import Settings

log = logging.getLogger(__name__)

Signature = tuple[int, int, int, int]


def _signature(path: Path) -> Signature | None:
    try:
        stat = os.stat(path)  # follows symlinks: the ..data swap changes the inode
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def load_registry(path: Path) -> ClientRegistry:
    """Read and validate ``path`` into a registry. Raises :class:`ClientsFileError`."""
    return ClientRegistry.from_document(load(path).document)


class ClientsFile:
    """The clients file at ``path``, kept current while :meth:`start`-ed.

    Construction loads the file (blocking, at start-up) and raises
    :class:`StartupError` with one line naming the file and the field.
    """

    def __init__(self, path: Path, *, reload_s: float = 2.0) -> None:
        self.path = path
        self.reload_s = reload_s
        signature = _signature(path)
        try:
            self._registry = load_registry(path)
        except ClientsFileError as exc:
            raise StartupError(f"IMAGEGATE_CLIENTS_FILE {exc}") from None
        self._loaded = signature
        self._failing = False
        self._failed: Signature | None = None
        """While failing: the signature of the version that failed (None: no file)."""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientsFile | None:
        """The configured clients file (loaded), or None when none is configured."""
        if settings.clients_file is None:
            return None
        return cls(settings.clients_file, reload_s=settings.clients_reload_s)

    def current(self) -> ClientRegistry:
        """The registry of the last good version. O(1), no I/O."""
        return self._registry

    async def start(self) -> None:
        """Start polling for changes (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="clients-file-reload")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> ClientsFile:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s)
            try:
                await self.check()
            except Exception:
                # Never let the watcher die; say what (no file content) and go on.
                log.exception("clients file check failed", extra={"clients_file": str(self.path)})

    async def check(self) -> bool:
        """One poll: reload if the file changed. True when a new registry is live."""
        signature = _signature(self.path)
        if signature is not None and signature == self._loaded:
            return False
        if self._failing and signature == self._failed:
            return False  # this bad version (or this absence) was reported already
        try:
            if signature is None:
                raise ClientsFileError(self.path, "", "no such file or not readable")
            if signature[2] == 0:
                # Most likely a rewrite in place caught between truncate and write; a
                # file that means "no clients" says so: an empty [clients] table.
                raise ClientsFileError(self.path, "", "is empty (write [clients] for no clients)")
            registry = await asyncio.to_thread(load_registry, self.path)
        except ClientsFileError as exc:
            self._failing, self._failed = True, signature
            log.error(
                f"clients file not reloaded, keeping the last good version: {exc}",
                extra={"clients_file": str(self.path)},
            )
            return False
        self._registry = registry
        self._loaded = signature
        self._failing = False
        log.info(
            "clients file reloaded",
            extra={"clients_file": str(self.path), "clients": len(registry)},
        )
        return True
