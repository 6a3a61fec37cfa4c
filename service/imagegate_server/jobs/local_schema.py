"""A job as a row of the gateway's local SQLite database: the tables and the mapping
between a row and a :class:`~.model.JobRecord`.

Tables (schema ``jobs``, version 1)
    ``jobs``        one row per job: its fields, its request and outcome blobs;
                    ``queue_seq`` orders its client's queue (NULL when not queued;
                    a job given back goes before the others), ``lease_ms`` is when
                    its runner's lease lapses (NULL when no runner holds it).
    ``job_turns``   per client with queued work: ``served`` (when it last had a
                    turn, a counter: the client longest without one goes next) and
                    ``retry_at_ms`` (a limit refused its last job: not before then).
    ``job_events``  what other worker processes must hear (a job ended, a cancel,
                    new work): :mod:`.local_events`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from imagegate_server.jobs.model import JobKind, JobRecord, JobState
from imagegate_server.localdb import Schema

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

COLUMNS = (
    "id, client, kind, operation, state, created_ms, updated_ms, expires_ms, model, n, "
    "request_id, fingerprint, estimate_micros, cost_micros, started_ms, ended_ms, "
    "partial_images, sent, owner, cancel_requested, slot, request, outcome"
)
"""The columns of a :class:`~.model.JobRecord`, in :func:`record_of`'s order."""
_PLACES = ", ".join("?" * 25)


def record_of(row: Sequence[Any]) -> JobRecord:
    """The job of a row of :data:`COLUMNS`."""
    return JobRecord(
        id=row[0], client=row[1], kind=JobKind(row[2]), operation=row[3], state=JobState(row[4]),
        created_ms=row[5], updated_ms=row[6], expires_ms=row[7], model=row[8], n=row[9],
        request_id=row[10], fingerprint=row[11], estimate_micros=row[12], cost_micros=row[13],
        started_ms=row[14], ended_ms=row[15], partial_images=row[16], sent=bool(row[17]),
        owner=row[18], cancel_requested=bool(row[19]), slot=row[20], request=bytes(row[21]),
        outcome=bytes(row[22]),
    )  # fmt: skip


def load(db: sqlite3.Connection, job_id: str) -> JobRecord | None:
    """The job of id ``job_id``, if there is one."""
    row = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608 (constant columns)
    return None if row is None else record_of(row)


def insert(
    db: sqlite3.Connection, record: JobRecord, queue_seq: int | None, lease_ms: int | None
) -> None:
    """Add the job's row: ``queue_seq`` its place in its client's queue (None: not
    queued), ``lease_ms`` when its runner's lease lapses (None: no runner)."""
    r = record
    db.execute(
        f"INSERT INTO jobs ({COLUMNS}, queue_seq, lease_ms) VALUES ({_PLACES})",  # noqa: S608
        (r.id, r.client, r.kind.value, r.operation, r.state.value, r.created_ms,
         r.updated_ms, r.expires_ms, r.model, r.n, r.request_id, r.fingerprint,
         r.estimate_micros, r.cost_micros, r.started_ms, r.ended_ms, r.partial_images,
         int(r.sent), r.owner, int(r.cancel_requested), r.slot, r.request, r.outcome,
         queue_seq, lease_ms),
    )  # fmt: skip
