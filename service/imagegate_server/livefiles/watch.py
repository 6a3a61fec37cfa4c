"""A loaded operator file kept current: re-read when it changes, swapped atomically.

Change detection is a ``stat`` of the file, and of every file its loaded version
names (an upstream's key file, say), every ``reload_s`` seconds, following symlinks,
comparing (device, inode, size, mtime). That sees an editor's in-place write, the
CLI's rename, and Kubernetes' Secret/ConfigMap update, where the kubelet writes a
new ``..2026_...`` directory and swaps the ``..data`` symlink in one rename (the
mounted file is a symlink through ``..data``, so its inode changes). A Secret
mounted with ``subPath`` never receives updates: mount the whole volume.

A version that fails to load keeps the last good one and logs one error, once per
version (not per poll); the next good version logs "... reloaded". Write the file
atomically (rename a new file over it, as the CLI and the kubelet do): a rewrite in
place can be read half-written, which is reported as a bad version (an empty file
at reload included) until the write completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

from imagegate_server.errors import StartupError
from imagegate_server.livefiles.documents import DocumentError

T = TypeVar("T")
Signature = tuple[int, int, int, int]


def signature(path: Path) -> Signature | None:
    try:
        stat = os.stat(path)  # follows symlinks: the ..data swap changes the inode
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class LiveFile(Generic[T]):
    """The file at ``path``, loaded by ``load`` (which raises :class:`DocumentError`),
    kept current while :meth:`start`-ed.

    Construction loads the file (blocking, at start-up) and raises
    :class:`StartupError` with one line naming the setting, the file and the field.
    ``depends_on`` names the other files a loaded version read (watched as well);
    ``summary`` gives the fields of the "reloaded" log line; ``on_change`` hears of
    every new version once it is live.
    """

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        *,
        setting: str,
        what: str,
        log: logging.Logger,
        reload_s: float = 2.0,
        empty_hint: str = "",
        depends_on: Callable[[T], Sequence[Path]] = lambda _: (),
        summary: Callable[[T], Mapping[str, object]] = lambda _: {},
    ) -> None:
        self.path = path
        self.reload_s = reload_s
        self._load = load
        self._what = what
        self._log = log
        self._field = what.replace(" ", "_")
        self._empty_hint = empty_hint
        self._depends_on = depends_on
        self._summary = summary
        self.on_change: Callable[[T], None] | None = None
        main = signature(path)
        try:
            self._value = load(path)
        except DocumentError as exc:
            raise StartupError(f"{setting} {exc}") from None
        self._loaded = self._signatures(main, self._value)
        self._failing = False
        self._failed: tuple[Signature | None, ...] | None = None
        """While failing: the signatures of the version that failed."""
        self._task: asyncio.Task[None] | None = None

    def _signatures(self, main: Signature | None, value: T | None) -> tuple[Signature | None, ...]:
        others = self._depends_on(value) if value is not None else ()
        return (main, *(signature(other) for other in others))

    def current(self) -> T:
        """The last good version. O(1), no I/O."""
        return self._value

    async def start(self) -> None:
        """Start polling for changes (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"{self._field}-reload")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> LiveFile[T]:
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
                self._log.exception(
                    f"{self._what} check failed", extra={self._field: str(self.path)}
                )

    async def check(self) -> bool:
        """One poll: reload if the file (or one it names) changed. True when a new
        version is live."""
        main = signature(self.path)
        now = self._signatures(main, self._value)
        if main is not None and now == self._loaded:
            return False
        if self._failing and now == self._failed:
            return False  # this bad version (or this absence) was reported already
        try:
            if main is None:
                raise DocumentError(self.path, "", "no such file or not readable")
            if main[2] == 0:
                # Most likely a rewrite in place caught between truncate and write.
                raise DocumentError(self.path, "", f"is empty{self._empty_hint}")
            value = await asyncio.to_thread(self._load, self.path)
        except DocumentError as exc:
            self._failing, self._failed = True, now
            self._log.error(
                f"{self._what} not reloaded, keeping the last good version: {exc}",
                extra={self._field: str(self.path)},
            )
            return False
        self._value = value
        self._loaded = self._signatures(main, value)
        self._failing = False
        self._log.info(
            f"{self._what} reloaded", extra={self._field: str(self.path), **self._summary(value)}
        )
        if self.on_change is not None:
            self.on_change(value)
        return True
