"""Server-sent events, as OpenAI streams image generations and edits.

OpenAI sends ``event:`` and ``data:`` lines separated by blank lines, and no
``[DONE]`` sentinel; this is the part of the SSE format it uses (multi-line data
joined by newlines, comments ignored, a last event without its blank line kept).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Events from decoded lines (without their line endings), as they complete."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        # One slice per field: a data line holds a whole image's base64 (megabytes),
        # and partitioning, then dropping the space, would copy it twice.
        if line.startswith("data:") or line == "data":
            data.append(_value(line, 4))
        elif line.startswith("event:") or line == "event":
            event = _value(line, 5)
        # Comments (":...") and other fields carry nothing OpenAI uses.
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data))


def _value(line: str, colon: int) -> str:
    """The value of a field whose colon is at ``colon``: after it and the one space
    that may follow it (none for a line that is only the field name)."""
    start = colon + 2 if line.startswith(" ", colon + 1) else colon + 1
    return line[start:]
