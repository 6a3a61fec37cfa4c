"""Progress on stderr: a ticking status line on a terminal, plain lines elsewhere.

GPT image models can take minutes, so a silent terminal looks hung; the ticker
shows the phase (uploading, waiting, receiving) and the elapsed time. When stderr
is not a terminal (CI logs, pipes) carriage-return animation would only garble
the log, so only whole lines are written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TextIO

_SPINNER = "|/-\\"
_TICK_SECONDS = 0.1


class Progress:
    def __init__(self, stream: TextIO, *, enabled: bool = True, tty: bool | None = None) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and (stream.isatty() if tty is None else tty)
        self.started = time.monotonic()
        self._status: Callable[[], str] = lambda: "starting"
        self._ticker: asyncio.Task[None] | None = None
        self._drawn = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def status(self, describe: Callable[[], str]) -> None:
        """The live status, as a function so the ticker reads current counters."""
        self._status = describe

    def line(self, text: str) -> None:
        """A permanent line (partial image received, summary)."""
        if not self.enabled:
            return
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self) -> None:
        self.started = time.monotonic()
        if self.tty:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._clear()

    async def _tick(self) -> None:
        frame = 0
        while True:
            spinner = _SPINNER[frame % len(_SPINNER)]
            self.stream.write(f"\r\x1b[K{spinner} {self._status()}  {self.elapsed():.1f}s")
            self.stream.flush()
            self._drawn = True
            frame += 1
            await asyncio.sleep(_TICK_SECONDS)

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
