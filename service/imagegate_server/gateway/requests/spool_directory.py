"""The directory where uploads wait on disk, shared by the workers of one ``serve``.

Spool files are unlinked as they are made (``O_TMPFILE``; where a file system lacks
it, created and unlinked at once), so they have no name to leave behind: their
space is freed when they are closed or their process dies, however it dies. Named
leftovers (a crash inside that create-unlink gap, on such a file system) are removed
at start, once they are older than any live gap can be. Unset, the directory is
``imagegate-spool-<uid>`` in the system's temporary directory (``TMPDIR``): writable
under a read-only root file system whenever ``/tmp`` is a volume, as in the
Kubernetes manifests.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import IO

from imagegate_server.errors import StartupError

log = logging.getLogger(__name__)

PREFIX = "imagegate-spool-"
# A named spool file lives for microseconds between its creation and its unlink:
# one older than this is a crash's leftover, even with other workers starting.
_LEFTOVER_AGE_S = 60.0


class SpoolDirectory:
    """The directory of this process's spool files (shared with its sibling workers)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def prepare(cls, configured: Path | None) -> SpoolDirectory:
        """Create and check the directory, and remove what a crash left in it.

        Unset, it is ``imagegate-spool-<uid>`` in the system's temporary directory,
        which other users may write: it must then be a directory of ours (not a
        link), and is kept private (0700). Raises :class:`StartupError`.
        """
        path = configured or Path(tempfile.gettempdir()) / f"imagegate-spool-{os.getuid()}"
        shown = str(path)[:200]
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if configured is None:
                _check_private(path)
            with tempfile.TemporaryFile(dir=path, prefix=PREFIX):
                pass
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            raise StartupError(
                f"IMAGEGATE_SPOOL_DIR: cannot use {shown!r} for uploads ({reason or 'I/O error'})"
            ) from None
        directory = cls(path)
        removed = directory.remove_leftovers()
        if removed:
            log.info("removed leftover spool files", extra={"files": removed, "spool_dir": shown})
        return directory

    def remove_leftovers(self) -> int:
        """Remove named spool files older than a minute; returns how many."""
        removed = 0
        cutoff = time.time() - _LEFTOVER_AGE_S
        with os.scandir(self.path) as entries:
            for entry in entries:
                if not entry.name.startswith(PREFIX):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue  # a sibling worker removed it first
        return removed

    def new_file(self) -> IO[bytes]:
        """An unlinked file in the directory, open for reading and writing."""
        try:
            return tempfile.TemporaryFile(dir=self.path, prefix=PREFIX)
        except FileNotFoundError:
            # Removed while serving (a cleaner of old /tmp entries): make it again.
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            return tempfile.TemporaryFile(dir=self.path, prefix=PREFIX)


def _check_private(path: Path) -> None:
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError("it is not a directory")
    if info.st_uid != os.getuid():
        raise ValueError("another user owns it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
