"""A record of every request the emulator received, for tests.

Tests (in-process or over HTTP at ``GET /_emulator/requests``) check what the gateway
really sent upstream: fields exactly as received, file parts with their hashes, and
what happened to the connection (e.g. the client went away before the response ended).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Request headers that carry the key: their values are never journalled.
_CREDENTIALS = frozenset({"authorization", "api-key"})


@dataclass
class FileRecord:
    field: str
    filename: str | None
    content_type: str | None
    size: int
    sha256: str


@dataclass
class JournalEvent:
    kind: str
    """``client_disconnected``, ``connection_reset_sent``, ``fault``, ``response_started``..."""
    detail: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class JournalEntry:
    seq: int
    request_id: str
    method: str
    path: str
    headers: dict[str, str]
    """All request headers; the values of Authorization and Azure's api-key are
    replaced by ``<redacted>``."""
    body_kind: str = "empty"
    """``json``, ``multipart``, ``empty`` or ``invalid``."""
    json: Any = None
    """The JSON body exactly as decoded, for JSON requests."""
    form: list[tuple[str, str]] = field(default_factory=list)
    """Non-file multipart fields in order, repeated names kept."""
    files: list[FileRecord] = field(default_factory=list)
    status: int | None = None
    events: list[JournalEvent] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    def form_values(self, name: str) -> list[str]:
        return [value for key, value in self.form if key == name]

    def has_event(self, kind: str) -> bool:
        return any(event.kind == kind for event in self.events)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["form"] = [list(pair) for pair in self.form]
        return data


class Journal:
    """Entries in arrival order, plus a way to wait for one to reach a state."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        # Replaced on every change, so a waiter wakes once per change (no lost wake-ups).
        self._changed = asyncio.Event()
        self._seq = 0

    def begin(
        self, request_id: str, method: str, path: str, headers: Mapping[str, str]
    ) -> JournalEntry:
        self._seq += 1
        safe = {
            name: ("<redacted>" if name.lower() in _CREDENTIALS else value)
            for name, value in headers.items()
        }
        entry = JournalEntry(self._seq, request_id, method, path, safe)
        self.entries.append(entry)
        self.notify()
        return entry

    def event(self, entry: JournalEntry, kind: str, detail: str = "") -> None:
        entry.events.append(JournalEvent(kind, detail))
        self.notify()

    def notify(self) -> None:
        """Wake every waiter so it re-checks its predicate."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def clear(self) -> None:
        self.entries.clear()
        self.notify()

    def by_path(self, path: str) -> list[JournalEntry]:
        return [entry for entry in self.entries if entry.path == path]

    async def wait_for(
        self, predicate: Callable[[list[JournalEntry]], bool], timeout_s: float = 10.0
    ) -> None:
        """Return once ``predicate(entries)`` holds; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self.entries):
                await self._changed.wait()

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.entries]
