"""Job events (a job ended, a cancel asked for, new work) between the worker processes
that share the local database.

SQLite has no notifications across processes: each change that others must hear
writes a row of ``job_events`` in its own transaction, and each process reads the
rows after the last one it read every :data:`EVENT_POLL_S`. Its own events reach
its listeners at once; rows older than a minute are deleted by the sweep.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from imagegate_server.jobs.model import now_ms
from imagegate_server.jobs.store import JobEvent
from imagegate_server.localdb import LocalDatabase

EVENT_POLL_S = 0.05
"""How often each process reads the events other processes wrote: a cancel reaches
the worker running the job within this (plus one transaction)."""
_EVENT_KEEP_MS = 60_000


def record_event(db: sqlite3.Connection, kind: str, job_id: str = "", owner: str = "") -> None:
    """Tell the other processes (within the caller's transaction)."""
    db.execute(
        "INSERT INTO job_events (kind, job_id, owner, at_ms) VALUES (?, ?, ?, ?)",
        (kind, job_id, owner, now_ms()),
    )


def forget_old_events(db: sqlite3.Connection, now_ms: int) -> None:
    """Delete the events every process has read by now."""
    db.execute("DELETE FROM job_events WHERE at_ms < ?", (now_ms - _EVENT_KEEP_MS,))


def _events_after(seq: int, db: sqlite3.Connection) -> list[Any]:
    return db.execute(
        "SELECT seq, kind, job_id, owner FROM job_events WHERE seq > ? ORDER BY seq LIMIT 1000",
        (seq,),
    ).fetchall()


class LocalEvents:
    """This process's listeners. ``wake`` is set when another process wrote new work
    (this process's claimers wait on it)."""

    def __init__(self, database: LocalDatabase, wake: asyncio.Event) -> None:
        self._db = database
        self._wake = wake
        self._listeners: list[asyncio.Queue[JobEvent]] = []

    def publish(self, event: JobEvent) -> None:
        """An event of this process, to its own listeners at once."""
        for listener in self._listeners:
            listener.put_nowait(event)

    async def events(self) -> AsyncIterator[JobEvent]:
        """This process's own events at once; other processes' within
        :data:`EVENT_POLL_S` (read from ``job_events``)."""
        listener: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._listeners.append(listener)
        loop = asyncio.get_running_loop()
        seen: set[tuple[str, str]] = set()
        try:
            (last,) = await self._db.read(
                lambda db: db.execute("SELECT coalesce(max(seq), 0) FROM job_events").fetchone()
            )
            next_poll = loop.time() + EVENT_POLL_S
            while True:
                try:
                    async with asyncio.timeout_at(next_poll):
                        event = await listener.get()
                    seen.add((event.kind, event.job_id))
                    yield event
                    continue
                except TimeoutError:
                    pass
                next_poll = loop.time() + EVENT_POLL_S
                rows = await self._db.read(partial(_events_after, last))
                for seq, kind, job_id, owner in rows:
                    last = seq
                    if kind == "work":
                        self._wake.set()
                    elif (kind, job_id) in seen:
                        seen.discard((kind, job_id))  # this process's own: delivered already
                    else:
                        yield JobEvent(kind, job_id, owner)
                if len(seen) > 10_000:
                    seen.clear()
        finally:
            self._listeners.remove(listener)
