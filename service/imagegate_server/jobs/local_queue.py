"""The fair queue in the local database: each client's queue and the clients' turns.

A client with queued work has a row in ``job_turns`` (:mod:`.local_schema`); the
next job goes to the client longest without a turn (``served``), one job per turn,
whatever each has queued, and not before the ``retry_at_ms`` a limit gave its last
job. The functions given a connection run inside the caller's transaction;
:func:`claim` makes its own and, between tries, waits for new work (this process's,
or another's read from ``job_events``) or a parked turn's time.
"""

from __future__ import annotations

import asyncio
import sqlite3

from imagegate_server.jobs.local_events import record_event
from imagegate_server.jobs.local_schema import load
from imagegate_server.jobs.model import JobRecord, now_ms
from imagegate_server.jobs.store import ClientJobs, QueueFull
from imagegate_server.localdb import LocalDatabase

# Queued: waiting in a queue; running: held by a runner (claimed, or sent upstream).
_FIGURES = (
    "sum(queue_seq IS NOT NULL), sum(owner != ''), "
    "min(CASE WHEN queue_seq IS NOT NULL THEN created_ms END)"
)


def queue_full(db: sqlite3.Connection, client: str, max_queued: int | None) -> QueueFull | None:
    """QueueFull when the client has ``max_queued`` jobs queued already."""
    (queued,) = db.execute(
        "SELECT count(*) FROM jobs WHERE client = ? AND state = 'queued'",
        (client,),
    ).fetchone()
    return QueueFull(int(queued)) if max_queued is not None and queued >= max_queued else None


def nothing_queued(db: sqlite3.Connection) -> bool:
    """No job of any client waits for its turn."""
    return db.execute("SELECT 1 FROM jobs WHERE queue_seq IS NOT NULL LIMIT 1").fetchone() is None


def enqueue(db: sqlite3.Connection, client: str) -> int:
    """A new job's place at the end of its client's queue (its ``queue_seq``), the
    client's turn given."""
    (last,) = db.execute(
        "SELECT coalesce(max(queue_seq), 0) FROM jobs WHERE client = ?",
        (client,),
    ).fetchone()
    db.execute(
        "INSERT INTO job_turns (client, served) VALUES (?, 0) ON CONFLICT (client) DO NOTHING",
        (client,),
    )
    record_event(db, "work")
    return int(last) + 1


async def claim(
    database: LocalDatabase, wake: asyncio.Event, owner: str, lease_ms: int, wait_s: float
) -> JobRecord | None:
    """The next job whose turn it is, leased to ``owner``; waits up to ``wait_s`` for
    one: until ``wake`` (new work, here or in another process) or a refused client's
    turn comes back."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        wake.clear()
        record, retry_at = await database.write(lambda db: _take_turn(db, owner, lease_ms))
        if record is not None:
            return record
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        if retry_at is not None:
            remaining = min(remaining, max(0.0, (retry_at - now_ms()) / 1000))
        try:
            async with asyncio.timeout(remaining):
                await wake.wait()
        except TimeoutError:
            pass


def _take_turn(
    db: sqlite3.Connection, owner: str, lease_ms: int
) -> tuple[JobRecord | None, int | None]:
    """The next job of the client whose turn it is, leased to ``owner``; else None and
    when a refused client's turn comes back (None: no client has queued work)."""
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
        "SELECT id FROM jobs WHERE client = ? AND queue_seq IS NOT NULL ORDER BY queue_seq LIMIT 1",
        (client,),
    ).fetchone()
    db.execute(
        "UPDATE jobs SET queue_seq = NULL, owner = ?, lease_ms = ?, updated_ms = ? WHERE id = ?",
        (owner, now + lease_ms, now, job_id),
    )
    db.execute(
        "UPDATE job_turns SET served = (SELECT max(served) + 1 FROM job_turns) WHERE client = ?",
        (client,),
    )
    return load(db, job_id), None


def requeue(db: sqlite3.Connection, record: JobRecord, retry_at_ms: int) -> None:
    """Put the job back at the head of its client's queue, unless it ended meanwhile (a
    cancel); the client's turn comes again at ``retry_at_ms``."""
    changed = db.execute(
        "UPDATE jobs SET queue_seq = ?, owner = '', lease_ms = NULL, state = 'queued' "
        "WHERE id = ? AND state IN ('queued', 'running')",
        (_queue_head(db, record.client), record.id),
    ).rowcount
    if not changed:
        return
    db.execute(
        "INSERT INTO job_turns (client, served, retry_at_ms) VALUES (?, 0, ?) "
        "ON CONFLICT (client) DO UPDATE SET retry_at_ms = excluded.retry_at_ms",
        (record.client, retry_at_ms),
    )
    record_event(db, "work")


def turn_now(db: sqlite3.Connection, client: str) -> None:
    """One of the client's jobs ended, freeing a slot: its turn may come at once."""
    db.execute("UPDATE job_turns SET retry_at_ms = 0 WHERE client = ?", (client,))


def forget_idle_turns(db: sqlite3.Connection) -> None:
    """Drop the turns of clients with nothing queued."""
    db.execute(
        "DELETE FROM job_turns WHERE NOT EXISTS "
        "(SELECT 1 FROM jobs j WHERE j.client = job_turns.client AND j.state = 'queued')"
    )


def client_figures(db: sqlite3.Connection, client: str) -> ClientJobs:
    """The client's submitted jobs queued and running, and its oldest queued one."""
    queued, running, oldest = db.execute(
        f"SELECT {_FIGURES} FROM jobs WHERE client = ? AND kind = 'job' "  # noqa: S608
        "AND state IN ('queued', 'running')",
        (client,),
    ).fetchone()
    return ClientJobs(int(queued or 0), int(running or 0), oldest)


def figures_by_client(db: sqlite3.Connection) -> dict[str, ClientJobs]:
    """:func:`client_figures` of every client with queued or running jobs."""
    rows = db.execute(
        f"SELECT client, {_FIGURES} FROM jobs "  # noqa: S608
        "WHERE kind = 'job' AND state IN ('queued', 'running') GROUP BY client"
    ).fetchall()
    return {c: ClientJobs(int(q or 0), int(r or 0), o) for c, q, r, o in rows}


def _queue_head(db: sqlite3.Connection, client: str) -> int:
    row = db.execute(
        "SELECT min(queue_seq) FROM jobs WHERE client = ? AND queue_seq IS NOT NULL", (client,)
    ).fetchone()
    return (row[0] if row[0] is not None else 1) - 1
