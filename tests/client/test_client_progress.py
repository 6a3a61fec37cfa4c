"""The stderr display: ticking on a terminal, whole lines elsewhere."""

from __future__ import annotations

import asyncio
import io
import re

from imagegate_server.client.progress import Progress


async def test_terminal_gets_a_ticking_status_line() -> None:
    stream = io.StringIO()
    progress = Progress(stream, tty=True)
    progress.status(lambda: "waiting for the images")
    progress.start()
    await asyncio.sleep(0.25)
    progress.line("partial image 1 received")
    await progress.stop()
    text = stream.getvalue()
    assert text.count("\r\x1b[K") >= 3  # redrawn in place several times
    assert re.search(r"waiting for the images  \d+\.\ds", text)
    # Permanent lines start on a cleared line and the display ends cleared.
    assert "\r\x1b[Kpartial image 1 received\n" in text
    # Nothing of the status line is left behind.
    assert text.endswith(("\n", "\r\x1b[K"))


async def test_pipes_and_logs_get_plain_lines() -> None:
    stream = io.StringIO()
    progress = Progress(stream, tty=False)
    progress.start()
    await asyncio.sleep(0.15)
    progress.line("done")
    await progress.stop()
    assert stream.getvalue() == "done\n"


async def test_quiet_writes_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=False, tty=True)
    progress.start()
    progress.line("done")
    await progress.stop()
    assert stream.getvalue() == ""
