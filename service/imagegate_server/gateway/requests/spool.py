"""Where an uploaded file's bytes wait for the upstream call: memory, then disk.

Not ``tempfile.SpooledTemporaryFile``: httpx sizes a multipart file with
``os.fstat(file.fileno())`` when it can, and on a SpooledTemporaryFile ``fileno()``
moves the bytes to disk, so every small upload would be written out just before
it is sent. Here the in-memory stage is a ``BytesIO``, whose ``fileno()`` raises,
so httpx measures it with seek/tell and it stays in memory.
"""

from __future__ import annotations

import io
import tempfile
from typing import IO


class Spool:
    """Bytes held in memory up to ``threshold``, in an anonymous temporary file past it."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._file: IO[bytes] = io.BytesIO()
        self.on_disk = False
        """Whether the bytes went past the threshold into a temporary file."""

    def write(self, data: bytes) -> None:
        # Synchronous on purpose: a 64 KiB write lands in the page cache in tens of
        # microseconds, less than handing it to a thread would cost.
        if not self.on_disk and self._file.tell() + len(data) > self._threshold:
            disk = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            assert isinstance(self._file, io.BytesIO)
            with self._file.getbuffer() as held:
                disk.write(held)
            self._file.close()
            self._file = disk
            self.on_disk = True
        self._file.write(data)

    def reader(self) -> IO[bytes]:
        """The bytes from the start (each call rewinds, so a retry resends them all)."""
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()
