"""Jobs in the gateway's local SQLite database: the default without Redis. The
:class:`~.store.JobStore` operations, each one short write transaction
(``BEGIN IMMEDIATE``), so the state a change checks is the state it changes.

Every worker of one ``serve`` opens the same database (:mod:`imagegate_server.localdb`),
so they share one queue (:mod:`.local_queue`), and a restart finds every job where
it was: queued jobs run after it; jobs that were running are found by the reaper
once their lease lapses (unsent: queued again; sent: failed ABORTED and charged
their estimate). The tables are :mod:`.local_schema`'s; the events between the
processes, :mod:`.local_events`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from imagegate_server.jobs.local_events import LocalEvents, forget_old_events, record_event
from imagegate_server.jobs.local_queue import (
    claim,
    client_figures,
    enqueue,
    figures_by_client,
    forget_idle_turns,
    nothing_queued,
    queue_full,
    requeue,
    turn_now,
)
from imagegate_server.jobs.local_schema import COLUMNS, insert, load, record_of
from imagegate_server.jobs.model import JobKind, JobRecord, JobState, now_ms
from imagegate_server.jobs.store import (
    ClientJobs,
    Created,
    JobEvent,
    Lapsed,
    Page,
    QueueFull,
    page_of,
)
from imagegate_server.localdb import LocalDatabase

_DONE = tuple(state.value for state in JobState if state.done)
_FINISH = (
    "UPDATE jobs SET state = ?, outcome = ?, cost_micros = ?, ended_ms = ?, updated_ms = ?, "
    "expires_ms = ?, lease_ms = NULL, queue_seq = NULL "
    "WHERE id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled')"
)


def _expired(record: JobRecord) -> bool:
    """Past its retention (the sweep deletes it within a minute; until then it is
    answered as gone)."""
    return record.state.done and record.expires_ms <= now_ms()


def _page_position(token: str) -> tuple[int, str] | None:
    created, _, job_id = token.partition(".")
    return (int(created), job_id) if created.isdigit() and job_id else None


class LocalJobStore:
    """:class:`~.store.JobStore` on the local database (opened with
    :data:`~.local_schema.SCHEMA`)."""

    backend = "local"

    def __init__(self, database: LocalDatabase) -> None:
        self._db = database
        self._wake = asyncio.Event()
        """Set when this process changed the queue (or read that another did)."""
        self._events = LocalEvents(database, self._wake)

    # Jobs --------------------------------------------------------------------------

    async def create(
        self,
        record: JobRecord,
        max_queued: int | None,
        lease_ms: int = 60_000,
        claim_for: str = "",
    ) -> Created | QueueFull:
        def work(db: sqlite3.Connection) -> Created | QueueFull:
            if record.request_id is not None:
                row = db.execute(
                    "SELECT id FROM jobs WHERE client = ? AND request_id = ?",
                    (record.client, record.request_id),
                ).fetchone()
                existing = load(db, row[0]) if row is not None else None
                if existing is not None and not _expired(existing):
                    return Created(existing, False)
                if existing is not None:  # past its retention: the request id is free
                    db.execute("DELETE FROM jobs WHERE id = ?", (existing.id,))
            if record.kind is not JobKind.JOB:
                insert(db, record, None, record.updated_ms + lease_ms)
                return Created(record, True)
            full = queue_full(db, record.client, max_queued)
            if full is not None:
                return full
            if claim_for and nothing_queued(db):
                claimed = record.with_(owner=claim_for)
                insert(db, claimed, None, record.updated_ms + lease_ms)
                return Created(claimed, True, claimed=True)
            insert(db, record, enqueue(db, record.client), None)
            return Created(record, True)

        created = await self._db.write(work)
        self._wake.set()
        return created

    async def get(self, client: str, job_id: str) -> JobRecord | None:
        record = await self._db.read(lambda db: load(db, job_id))
        if record is None or record.client != client or _expired(record):
            return None
        return record

    async def watch(self, client: str, job_id: str, for_ms: int) -> JobRecord | None:
        return await self.get(client, job_id)  # every end is an event here

    async def page(
        self, client: str, page_size: int, page_token: str, state: JobState | None
    ) -> Page:
        before = _page_position(page_token)

        def read(db: sqlite3.Connection) -> Page:
            sql = f"SELECT {COLUMNS} FROM jobs WHERE client = ? AND kind = 'job'"  # noqa: S608
            args: list[Any] = [client]
            if state is not None:
                sql += " AND state = ?"
                args.append(state.value)
            if before is not None:
                sql += " AND (created_ms < ? OR (created_ms = ? AND id < ?))"
                args += [before[0], before[0], before[1]]
            sql += " ORDER BY created_ms DESC, id DESC LIMIT ?"
            rows = db.execute(sql, (*args, page_size + 1)).fetchall()
            return page_of([record_of(row) for row in rows], page_size)

        return await self._db.read(read)

    async def delete(self, client: str, job_id: str) -> JobRecord | None:
        def work(db: sqlite3.Connection) -> JobRecord | None:
            record = load(db, job_id)
            if record is None or record.client != client or not record.state.done:
                return record if record is not None and record.client == client else None
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return record

        return await self._db.write(work)

    async def discard(self, record: JobRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM jobs WHERE id = ? AND kind = 'call'", (record.id,))
            record_event(db, "done", record.id)

        await self._db.write(work)

    # Running -----------------------------------------------------------------------

    async def claim(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        return await claim(self._db, self._wake, owner, lease_ms, wait_s)

    async def release(self, record: JobRecord, retry_at_ms: int) -> None:
        await self._db.write(lambda db: requeue(db, record, retry_at_ms))
        self._wake.set()

    async def mark_sent(self, record: JobRecord, now_ms: int, slot: str = "") -> JobRecord | None:
        def work(db: sqlite3.Connection) -> JobRecord | None:
            changed = db.execute(
                "UPDATE jobs SET state = 'running', sent = 1, started_ms = ?, updated_ms = ?, "
                "slot = ? WHERE id = ? AND owner = ? AND cancel_requested = 0 AND state IN "
                "('queued', 'running')",
                (now_ms, now_ms, slot, record.id, record.owner),
            ).rowcount
            return load(db, record.id) if changed else None

        return await self._db.write(work)

    async def progress(self, record: JobRecord, partial_images: int) -> None:
        await self._db.write(
            lambda db: db.execute(
                "UPDATE jobs SET partial_images = ?, updated_ms = ? WHERE id = ?",
                (partial_images, now_ms(), record.id),
            )
        )

    async def finish(
        self,
        record: JobRecord,
        state: JobState,
        outcome: bytes,
        cost_micros: int | None,
        expires_ms: int,
    ) -> JobRecord | None:
        def work(db: sqlite3.Connection) -> JobRecord | None:
            now = now_ms()
            changed = db.execute(
                _FINISH,
                (state.value, outcome, cost_micros, now, now, expires_ms, record.id),
            ).rowcount
            if not changed:
                return None
            # A slot of the client is free: its turn may come at once.
            turn_now(db, record.client)
            record_event(db, "done", record.id)
            return load(db, record.id)

        ended = await self._db.write(work)
        self._wake.set()
        if ended is not None:
            self._events.publish(JobEvent("done", record.id))
        return ended

    async def renew(self, owner: str, job_ids: Sequence[str], lease_ms: int) -> None:
        until = now_ms() + lease_ms
        await self._db.write(
            lambda db: db.executemany(
                "UPDATE jobs SET lease_ms = ? WHERE id = ? AND owner = ? AND lease_ms IS NOT NULL",
                [(until, job_id, owner) for job_id in job_ids],
            )
        )

    async def reap(self, now_ms: int, expires_ms: int, error: bytes, limit: int) -> list[Lapsed]:
        def work(db: sqlite3.Connection) -> list[Lapsed]:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE lease_ms < ? LIMIT ?",  # noqa: S608
                (now_ms, limit),
            ).fetchall()
            lapsed = []
            for record in map(record_of, rows):
                if not record.sent and record.kind is JobKind.JOB:
                    requeue(db, record, 0)
                    lapsed.append(Lapsed(record, True))
                elif not record.sent:
                    db.execute("DELETE FROM jobs WHERE id = ?", (record.id,))
                    record_event(db, "done", record.id)
                    lapsed.append(Lapsed(record, True))
                else:
                    db.execute(
                        "UPDATE jobs SET state = 'failed', outcome = ?, ended_ms = ?, "
                        "updated_ms = ?, expires_ms = ?, lease_ms = NULL, "
                        "cost_micros = estimate_micros WHERE id = ?",
                        (error, now_ms, now_ms, expires_ms, record.id),
                    )
                    record_event(db, "done", record.id)
                    ended = load(db, record.id)
                    assert ended is not None
                    lapsed.append(Lapsed(ended, False))
            return lapsed

        lapsed = await self._db.write(work)
        if lapsed:
            self._wake.set()
        return lapsed

    async def request_cancel(
        self, client: str, job_id: str, outcome: bytes, now_ms: int, expires_ms: int
    ) -> tuple[JobRecord, bool] | None:
        def work(db: sqlite3.Connection) -> tuple[JobRecord, bool] | None:
            record = load(db, job_id)
            if record is None or record.client != client:
                return None
            if record.state.done:
                return record, False
            if record.state is JobState.QUEUED:
                # Not sent: cancelled at once, even while a runner holds it (claimed,
                # waiting for its client's limits); that runner's mark_sent then
                # finds it ended and never sends it, and its release leaves it so.
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, outcome = ?, "
                    "ended_ms = ?, updated_ms = ?, expires_ms = ?, queue_seq = NULL, "
                    "lease_ms = NULL, cost_micros = 0 WHERE id = ?",
                    (outcome, now_ms, now_ms, expires_ms, job_id),
                )
                record_event(db, "done", job_id)
                ended = load(db, job_id)
                assert ended is not None
                return ended, True
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_ms = ? WHERE id = ?",
                (now_ms, job_id),
            )
            record_event(db, "cancel", job_id, record.owner)
            return record.with_(cancel_requested=True), False

        answer = await self._db.write(work)
        if answer is not None:
            record, ended = answer
            if ended:
                self._events.publish(JobEvent("done", job_id))
            elif not record.state.done:
                self._events.publish(JobEvent("cancel", job_id, record.owner))
        return answer

    # Figures -----------------------------------------------------------------------

    async def client_jobs(self, client: str) -> ClientJobs:
        return await self._db.read(partial(client_figures, client=client))

    async def queue_lengths(self) -> dict[str, ClientJobs]:
        return await self._db.read(figures_by_client)

    async def expired(self, now_ms: int, limit: int) -> list[JobRecord]:
        def work(db: sqlite3.Connection) -> list[JobRecord]:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE expires_ms <= ? AND state IN {_DONE} "  # noqa: S608
                "LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            records = [record_of(row) for row in rows]
            db.executemany("DELETE FROM jobs WHERE id = ?", [(r.id,) for r in records])
            forget_old_events(db, now_ms)
            forget_idle_turns(db)
            return records

        return await self._db.write(work)

    # Events ------------------------------------------------------------------------

    def events(self) -> AsyncIterator[JobEvent]:
        return self._events.events()

    async def aclose(self) -> None:
        """The database belongs to the gateway, which closes it."""
