"""Jobs in the gateway's local SQLite database: the default without Redis.

Every worker of one ``serve`` opens the same database (:mod:`imagegate_server.localdb`),
so they share one queue, and a restart finds every job where it was: queued jobs
run after it; jobs that were running are found by the reaper once their lease
lapses (unsent: queued again; sent: failed ABORTED and charged their estimate).

Tables (schema ``jobs``, version 1)
    ``jobs``        one row per job: its fields, its request and outcome blobs;
                    ``queue_seq`` orders its client's queue (NULL when not queued;
                    a job given back goes before the others), ``lease_ms`` is when
                    its runner's lease lapses (NULL when no runner holds it).
    ``job_turns``   per client with queued work: ``served`` (when it last had a
                    turn, a counter: the client longest without one goes next) and
                    ``retry_at_ms`` (a limit refused its last job: not before then).
    ``job_events``  what other worker processes must hear (a job ended, a cancel,
                    new work); each process reads it every :data:`EVENT_POLL_S`
                    (SQLite has no notifications across processes) and rows older
                    than a minute are deleted.

Each operation is one short write transaction (``BEGIN IMMEDIATE``), so the
state a change checks is the state it changes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

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
from imagegate_server.localdb import LocalDatabase, Schema

SCHEMA = Schema(
    "jobs",
    (
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            client TEXT NOT NULL,
            kind TEXT NOT NULL,
            operation TEXT NOT NULL,
            state TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            model TEXT NOT NULL,
            n INTEGER NOT NULL,
            request_id TEXT,
            fingerprint TEXT NOT NULL,
            estimate_micros INTEGER NOT NULL,
            cost_micros INTEGER,
            started_ms INTEGER,
            ended_ms INTEGER,
            partial_images INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            owner TEXT NOT NULL DEFAULT '',
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            slot TEXT NOT NULL DEFAULT '',
            queue_seq INTEGER,
            lease_ms INTEGER,
            request BLOB NOT NULL,
            outcome BLOB NOT NULL DEFAULT x''
        );
        CREATE UNIQUE INDEX jobs_by_request_id ON jobs (client, request_id)
            WHERE request_id IS NOT NULL;
        CREATE INDEX jobs_queued ON jobs (client, queue_seq) WHERE queue_seq IS NOT NULL;
        CREATE INDEX jobs_listed ON jobs (client, created_ms) WHERE kind = 'job';
        CREATE INDEX jobs_leased ON jobs (lease_ms) WHERE lease_ms IS NOT NULL;
        CREATE INDEX jobs_expiring ON jobs (expires_ms);
        CREATE TABLE job_turns (
            client TEXT PRIMARY KEY,
            served INTEGER NOT NULL,
            retry_at_ms INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE TABLE job_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            job_id TEXT NOT NULL,
            owner TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        )
        """,
    ),
)

EVENT_POLL_S = 0.05
"""How often each process reads the events other processes wrote: a cancel reaches
the worker running the job within this (plus one transaction)."""
_EVENT_KEEP_MS = 60_000
_COLUMNS = (
    "id, client, kind, operation, state, created_ms, updated_ms, expires_ms, model, n, "
    "request_id, fingerprint, estimate_micros, cost_micros, started_ms, ended_ms, "
    "partial_images, sent, owner, cancel_requested, slot, request, outcome"
)
_PLACES = ", ".join("?" * 25)
_DONE = tuple(state.value for state in JobState if state.done)
_FINISH = (
    "UPDATE jobs SET state = ?, outcome = ?, cost_micros = ?, ended_ms = ?, updated_ms = ?, "
    "expires_ms = ?, lease_ms = NULL, queue_seq = NULL "
    "WHERE id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled')"
)
# Queued: waiting in a queue; running: held by a runner (claimed, or sent upstream).
_FIGURES = (
    "sum(queue_seq IS NOT NULL), sum(owner != ''), "
    "min(CASE WHEN queue_seq IS NOT NULL THEN created_ms END)"
)


def _record(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        id=row[0], client=row[1], kind=JobKind(row[2]), operation=row[3], state=JobState(row[4]),
        created_ms=row[5], updated_ms=row[6], expires_ms=row[7], model=row[8], n=row[9],
        request_id=row[10], fingerprint=row[11], estimate_micros=row[12], cost_micros=row[13],
        started_ms=row[14], ended_ms=row[15], partial_images=row[16], sent=bool(row[17]),
        owner=row[18], cancel_requested=bool(row[19]), slot=row[20], request=bytes(row[21]),
        outcome=bytes(row[22]),
    )  # fmt: skip


def _get(db: sqlite3.Connection, job_id: str) -> JobRecord | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608 (constant columns)
    return None if row is None else _record(row)


def _expired(record: JobRecord) -> bool:
    """Past its retention (the sweep deletes it within a minute; until then it is
    answered as gone)."""
    return record.state.done and record.expires_ms <= now_ms()


def _events_after(seq: int, db: sqlite3.Connection) -> list[Any]:
    return db.execute(
        "SELECT seq, kind, job_id, owner FROM job_events WHERE seq > ? ORDER BY seq LIMIT 1000",
        (seq,),
    ).fetchall()


def _page_position(token: str) -> tuple[int, str] | None:
    created, _, job_id = token.partition(".")
    return (int(created), job_id) if created.isdigit() and job_id else None


def _event(db: sqlite3.Connection, kind: str, job_id: str = "", owner: str = "") -> None:
    db.execute(
        "INSERT INTO job_events (kind, job_id, owner, at_ms) VALUES (?, ?, ?, ?)",
        (kind, job_id, owner, now_ms()),
    )


def _queue_head(db: sqlite3.Connection, client: str) -> int:
    row = db.execute(
        "SELECT min(queue_seq) FROM jobs WHERE client = ? AND queue_seq IS NOT NULL", (client,)
    ).fetchone()
    return (row[0] if row[0] is not None else 1) - 1


def _requeue(db: sqlite3.Connection, record: JobRecord, retry_at_ms: int) -> None:
    db.execute(
        "UPDATE jobs SET queue_seq = ?, owner = '', lease_ms = NULL, state = 'queued' WHERE id = ?",
        (_queue_head(db, record.client), record.id),
    )
    db.execute(
        "INSERT INTO job_turns (client, served, retry_at_ms) VALUES (?, 0, ?) "
        "ON CONFLICT (client) DO UPDATE SET retry_at_ms = excluded.retry_at_ms",
        (record.client, retry_at_ms),
    )
    _event(db, "work")


class LocalJobStore:
    """:class:`~.store.JobStore` on the local database (opened with :data:`SCHEMA`)."""

    backend = "local"

    def __init__(self, database: LocalDatabase) -> None:
        self._db = database
        self._wake = asyncio.Event()
        """Set when this process changed the queue (or read that another did)."""
        self._listeners: list[asyncio.Queue[JobEvent]] = []

    # Jobs --------------------------------------------------------------------------

    async def create(
        self, record: JobRecord, max_queued: int | None, lease_ms: int = 60_000
    ) -> Created | QueueFull:
        def work(db: sqlite3.Connection) -> Created | QueueFull:
            if record.request_id is not None:
                row = db.execute(
                    "SELECT id FROM jobs WHERE client = ? AND request_id = ?",
                    (record.client, record.request_id),
                ).fetchone()
                existing = _get(db, row[0]) if row is not None else None
                if existing is not None and not _expired(existing):
                    return Created(existing, False)
                if existing is not None:  # past its retention: the request id is free
                    db.execute("DELETE FROM jobs WHERE id = ?", (existing.id,))
            queue_seq = None
            if record.kind is JobKind.JOB:
                (queued,) = db.execute(
                    "SELECT count(*) FROM jobs WHERE client = ? AND state = 'queued'",
                    (record.client,),
                ).fetchone()
                if max_queued is not None and queued >= max_queued:
                    return QueueFull(int(queued))
                (last,) = db.execute(
                    "SELECT coalesce(max(queue_seq), 0) FROM jobs WHERE client = ?",
                    (record.client,),
                ).fetchone()
                queue_seq = int(last) + 1
                db.execute(
                    "INSERT INTO job_turns (client, served) VALUES (?, 0) "
                    "ON CONFLICT (client) DO NOTHING",
                    (record.client,),
                )
                _event(db, "work")
            r = record
            db.execute(
                f"INSERT INTO jobs ({_COLUMNS}, queue_seq, lease_ms) VALUES ({_PLACES})",  # noqa: S608
                (r.id, r.client, r.kind.value, r.operation, r.state.value, r.created_ms,
                 r.updated_ms, r.expires_ms, r.model, r.n, r.request_id, r.fingerprint,
                 r.estimate_micros, r.cost_micros, r.started_ms, r.ended_ms, r.partial_images,
                 int(r.sent), r.owner, int(r.cancel_requested), r.slot, r.request, r.outcome,
                 queue_seq, None if r.kind is JobKind.JOB else r.updated_ms + lease_ms),
            )  # fmt: skip
            return Created(record, True)

        created = await self._db.write(work)
        self._wake.set()
        return created

    async def get(self, client: str, job_id: str) -> JobRecord | None:
        record = await self._db.read(lambda db: _get(db, job_id))
        if record is None or record.client != client or _expired(record):
            return None
        return record

    async def page(
        self, client: str, page_size: int, page_token: str, state: JobState | None
    ) -> Page:
        before = _page_position(page_token)

        def read(db: sqlite3.Connection) -> Page:
            sql = f"SELECT {_COLUMNS} FROM jobs WHERE client = ? AND kind = 'job'"  # noqa: S608
            args: list[Any] = [client]
            if state is not None:
                sql += " AND state = ?"
                args.append(state.value)
            if before is not None:
                sql += " AND (created_ms < ? OR (created_ms = ? AND id < ?))"
                args += [before[0], before[0], before[1]]
            sql += " ORDER BY created_ms DESC, id DESC LIMIT ?"
            rows = db.execute(sql, (*args, page_size + 1)).fetchall()
            return page_of([_record(row) for row in rows], page_size)

        return await self._db.read(read)

    async def delete(self, client: str, job_id: str) -> JobRecord | None:
        def work(db: sqlite3.Connection) -> JobRecord | None:
            record = _get(db, job_id)
            if record is None or record.client != client or not record.state.done:
                return record if record is not None and record.client == client else None
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return record

        return await self._db.write(work)

    async def discard(self, record: JobRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM jobs WHERE id = ? AND kind = 'call'", (record.id,))
            _event(db, "done", record.id)

        await self._db.write(work)

    # Running -----------------------------------------------------------------------

    async def claim(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            self._wake.clear()
            record, retry_at = await self._db.write(lambda db: self._claim(db, owner, lease_ms))
            if record is not None:
                return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if retry_at is not None:
                remaining = min(remaining, max(0.0, (retry_at - now_ms()) / 1000))
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                pass

    @staticmethod
    def _claim(
        db: sqlite3.Connection, owner: str, lease_ms: int
    ) -> tuple[JobRecord | None, int | None]:
        now = now_ms()
        row = db.execute(
            "SELECT t.client FROM job_turns t WHERE t.retry_at_ms <= ? AND EXISTS "
            "(SELECT 1 FROM jobs j WHERE j.client = t.client AND j.queue_seq IS NOT NULL) "
            "ORDER BY t.served LIMIT 1",
            (now,),
        ).fetchone()
        if row is None:
            waiting = db.execute(
                "SELECT min(t.retry_at_ms) FROM job_turns t WHERE EXISTS "
                "(SELECT 1 FROM jobs j WHERE j.client = t.client AND j.queue_seq IS NOT NULL)"
            ).fetchone()
            return None, waiting[0]
        client = row[0]
        (job_id,) = db.execute(
            "SELECT id FROM jobs WHERE client = ? AND queue_seq IS NOT NULL "
            "ORDER BY queue_seq LIMIT 1",
            (client,),
        ).fetchone()
        db.execute(
            "UPDATE jobs SET queue_seq = NULL, owner = ?, lease_ms = ?, updated_ms = ? "
            "WHERE id = ?",
            (owner, now + lease_ms, now, job_id),
        )
        db.execute(
            "UPDATE job_turns SET served = (SELECT max(served) + 1 FROM job_turns) "
            "WHERE client = ?",
            (client,),
        )
        return _get(db, job_id), None

    async def release(self, record: JobRecord, retry_at_ms: int) -> None:
        await self._db.write(lambda db: _requeue(db, record, retry_at_ms))
        self._wake.set()

    async def mark_sent(self, record: JobRecord, now_ms: int, slot: str = "") -> JobRecord | None:
        def work(db: sqlite3.Connection) -> JobRecord | None:
            changed = db.execute(
                "UPDATE jobs SET state = 'running', sent = 1, started_ms = ?, updated_ms = ?, "
                "slot = ? WHERE id = ? AND owner = ? AND cancel_requested = 0 AND state IN "
                "('queued', 'running')",
                (now_ms, now_ms, slot, record.id, record.owner),
            ).rowcount
            return _get(db, record.id) if changed else None

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
            db.execute("UPDATE job_turns SET retry_at_ms = 0 WHERE client = ?", (record.client,))
            _event(db, "done", record.id)
            return _get(db, record.id)

        ended = await self._db.write(work)
        self._wake.set()
        if ended is not None:
            self._publish(JobEvent("done", record.id))
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
                f"SELECT {_COLUMNS} FROM jobs WHERE lease_ms < ? LIMIT ?",  # noqa: S608
                (now_ms, limit),
            ).fetchall()
            lapsed = []
            for record in map(_record, rows):
                if not record.sent and record.kind is JobKind.JOB:
                    _requeue(db, record, 0)
                    lapsed.append(Lapsed(record, True))
                elif not record.sent:
                    db.execute("DELETE FROM jobs WHERE id = ?", (record.id,))
                    _event(db, "done", record.id)
                    lapsed.append(Lapsed(record, True))
                else:
                    db.execute(
                        "UPDATE jobs SET state = 'failed', outcome = ?, ended_ms = ?, "
                        "updated_ms = ?, expires_ms = ?, lease_ms = NULL, "
                        "cost_micros = estimate_micros WHERE id = ?",
                        (error, now_ms, now_ms, expires_ms, record.id),
                    )
                    _event(db, "done", record.id)
                    ended = _get(db, record.id)
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
            record = _get(db, job_id)
            if record is None or record.client != client:
                return None
            if record.state.done:
                return record, False
            if record.owner == "":  # waiting in its queue: no runner to tell
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, outcome = ?, "
                    "ended_ms = ?, updated_ms = ?, expires_ms = ?, queue_seq = NULL, "
                    "lease_ms = NULL, cost_micros = 0 WHERE id = ?",
                    (outcome, now_ms, now_ms, expires_ms, job_id),
                )
                _event(db, "done", job_id)
                ended = _get(db, job_id)
                assert ended is not None
                return ended, True
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_ms = ? WHERE id = ?",
                (now_ms, job_id),
            )
            _event(db, "cancel", job_id, record.owner)
            return record.with_(cancel_requested=True), False

        answer = await self._db.write(work)
        if answer is not None:
            record, ended = answer
            if ended:
                self._publish(JobEvent("done", job_id))
            elif not record.state.done:
                self._publish(JobEvent("cancel", job_id, record.owner))
        return answer

    # Figures -----------------------------------------------------------------------

    async def client_jobs(self, client: str) -> ClientJobs:
        def read(db: sqlite3.Connection) -> ClientJobs:
            queued, running, oldest = db.execute(
                f"SELECT {_FIGURES} FROM jobs WHERE client = ? AND kind = 'job' "  # noqa: S608
                "AND state IN ('queued', 'running')",
                (client,),
            ).fetchone()
            return ClientJobs(int(queued or 0), int(running or 0), oldest)

        return await self._db.read(read)

    async def queue_lengths(self) -> dict[str, ClientJobs]:
        def read(db: sqlite3.Connection) -> dict[str, ClientJobs]:
            rows = db.execute(
                f"SELECT client, {_FIGURES} FROM jobs "  # noqa: S608
                "WHERE kind = 'job' AND state IN ('queued', 'running') GROUP BY client"
            ).fetchall()
            return {c: ClientJobs(int(q or 0), int(r or 0), o) for c, q, r, o in rows}

        return await self._db.read(read)

    async def expired(self, now_ms: int, limit: int) -> list[JobRecord]:
        def work(db: sqlite3.Connection) -> list[JobRecord]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE expires_ms <= ? AND state IN {_DONE} "  # noqa: S608
                "LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            records = [_record(row) for row in rows]
            db.executemany("DELETE FROM jobs WHERE id = ?", [(r.id,) for r in records])
            db.execute("DELETE FROM job_events WHERE at_ms < ?", (now_ms - _EVENT_KEEP_MS,))
            db.execute(
                "DELETE FROM job_turns WHERE NOT EXISTS "
                "(SELECT 1 FROM jobs j WHERE j.client = job_turns.client AND j.state = 'queued')"
            )
            return records

        return await self._db.write(work)

    # Events ------------------------------------------------------------------------

    def _publish(self, event: JobEvent) -> None:
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

    async def aclose(self) -> None:
        """The database belongs to the gateway, which closes it."""
