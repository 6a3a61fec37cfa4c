"""Server-sent events, as OpenAI streams image generations and edits, read as bytes.

OpenAI sends ``event:`` and ``data:`` lines separated by blank lines, and no
``[DONE]`` sentinel; this is the part of the SSE format it uses (lines ended by CRLF,
LF or CR, multi-line data joined by newlines, one space after the colon dropped,
comments and other fields ignored, a last event without its blank line kept).

A data line holds a whole image's base64 (megabytes). Decoding the body to text,
splitting it into lines and parsing each line's JSON copied every image several
times over, and the stream cost twice the CPU of the same unary answer. Here the
bytes of each event's data go, as they arrive, into a *sink* made for the event (the
upstream client's is an :class:`~imagegate_server.upstream.decoding.AnswerReader`,
which decodes the images as they stream by), so no line is ever held whole.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar


class DataSink(Protocol):
    def feed(self, data: bytes) -> None: ...


S = TypeVar("S", bound=DataSink)

# Longer than any field name of the format: the rest of such a line is skipped.
_NAME_LIMIT = 64
# Event names are short words; a longer one is cut here rather than held.
_EVENT_LIMIT = 256
_LF, _CR, _SPACE = 0x0A, 0x0D, 0x20


class _Field(enum.Enum):
    NAME = "name"  # the line's start, up to its colon
    DATA = "data"
    EVENT = "event"
    SKIP = "skip"


async def iter_events(
    chunks: AsyncIterable[bytes], new_sink: Callable[[], S]
) -> AsyncIterator[tuple[str, S]]:
    """Each event with data, as it completes: its name (``message`` when it has none)
    and the sink its data was fed to (lines joined by ``\\n``)."""
    framer = _Framer(new_sink)
    async for chunk in chunks:
        for event in framer.feed(chunk):
            yield event
    for event in framer.close():
        yield event


class _Framer(Generic[S]):
    def __init__(self, new_sink: Callable[[], S]) -> None:
        self._new_sink = new_sink
        self._sink: S | None = None
        """This event's sink, from its first data line."""
        self._event = bytearray()
        self._field = _Field.NAME
        self._name = bytearray()
        self._space = False
        """The next byte of the value is the one space that may follow the colon."""
        self._cr = False
        """The last chunk ended with CR: an LF starting the next one ends no line."""

    def feed(self, chunk: bytes) -> list[tuple[str, S]]:
        events: list[tuple[str, S]] = []
        pos, size = 0, len(chunk)
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                pos = 1
        # Where the next LF and CR are; each is searched for again only once passed,
        # so a chunk is scanned once however many lines it holds.
        lf = cr = -1
        while pos < size:
            if lf < pos:
                lf = chunk.find(b"\n", pos)
                lf = size if lf < 0 else lf
            if cr < pos:
                cr = chunk.find(b"\r", pos)
                cr = size if cr < 0 else cr
            end = min(lf, cr)
            if end > pos:
                self._take(chunk, pos, end)
            if end == size:
                break
            self._end_line(events)
            pos = end + 1
            if chunk[end] == _CR:
                if pos == size:
                    self._cr = True
                elif chunk[pos] == _LF:
                    pos += 1
        return events

    def close(self) -> list[tuple[str, S]]:
        events: list[tuple[str, S]] = []
        if self._field is not _Field.NAME or self._name:
            self._end_line(events)  # a last line without its line ending
        self._dispatch(events)  # a last event without its blank line
        return events

    def _take(self, chunk: bytes, start: int, end: int) -> None:
        """Bytes ``chunk[start:end]`` of the current line (no line ending in them)."""
        if self._field is _Field.NAME:
            colon = chunk.find(b":", start, end)
            if colon < 0:
                self._name += chunk[start:end]
                if len(self._name) > _NAME_LIMIT:
                    self._field = _Field.SKIP
                return
            self._name += chunk[start:colon]
            self._begin(bytes(self._name))
            start = colon + 1
        if start < end and self._space:
            self._space = False
            if chunk[start] == _SPACE:
                start += 1
        if start == end:
            return
        if self._field is _Field.DATA:
            assert self._sink is not None
            self._sink.feed(chunk[start:end])
        elif self._field is _Field.EVENT:
            room = max(0, _EVENT_LIMIT - len(self._event))
            self._event += chunk[start : min(end, start + room)]

    def _begin(self, name: bytes) -> None:
        """The field ``name`` begins; its value follows."""
        if name == b"data":
            if self._sink is None:
                self._sink = self._new_sink()
            else:
                self._sink.feed(b"\n")
            self._field = _Field.DATA
        elif name == b"event":
            self._event.clear()
            self._field = _Field.EVENT
        else:  # a comment (no name) or a field OpenAI does not use (id, retry)
            self._field = _Field.SKIP
        self._space = True

    def _end_line(self, events: list[tuple[str, S]]) -> None:
        if self._field is _Field.NAME:
            if self._name:
                self._begin(bytes(self._name))  # a field name alone: an empty value
            else:
                self._dispatch(events)  # a blank line ends the event
        self._field, self._space = _Field.NAME, False
        self._name.clear()

    def _dispatch(self, events: list[tuple[str, S]]) -> None:
        if self._sink is not None:
            events.append((self._event.decode("utf-8", "replace") or "message", self._sink))
        self._sink = None
        self._event.clear()
