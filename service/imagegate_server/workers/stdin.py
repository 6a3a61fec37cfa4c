"""A child's side of its plan pipe (see :mod:`.plan`)."""

from __future__ import annotations

import asyncio
import sys


async def open_plan_pipe() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def wait_for_eof(reader: asyncio.StreamReader, then: asyncio.Event) -> None:
    """Set ``then`` once the supervisor's end of the pipe is closed."""
    while await reader.read(4096):
        pass
    then.set()
