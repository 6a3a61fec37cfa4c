"""Jobs in Redis, shared by every replica (``IMAGEGATE_REDIS_URL``): the
:class:`~.store.JobStore` operations, each one script (:mod:`.redis_scripts`) or read.

Why these primitives
    The turns of clients with queued work are a Redis stream read by a consumer
    group (:mod:`.redis_queue`): no polling, each turn to exactly one replica, round
    robin across clients; a job submitted while no turn waits goes straight to a
    free runner of the submitting replica, in the script that creates it
    (``create.lua``), skipping a turn's round trips. Each job's own lease (a sorted
    set by expiry) outlives its runner only by the lease period; any replica's
    reaper then re-queues it or fails it, in a script that checks what it changes.
    Cancels, and the ends of jobs a waiter watches (``watch.lua``), go out on one
    capped stream that each replica reads with one blocking ``XREAD``
    (:mod:`.redis_events`); an end nobody watches goes nowhere, so no replica reads
    every job's end.
One slot
    Every key has the hash tag ``{jobs}`` (:mod:`.redis_scripts`), so every script
    is atomic on a Cluster too. Jobs are long and few next to calls (a job is
    seconds to minutes of OpenAI's time; one Redis primary runs tens of thousands
    of these scripts per second), so one slot is not what limits a fleet, and it
    buys exactly-once state changes without two-step protocols.
Connections
    Scripts and reads go through the shared client (short timeouts); the two
    blocking reads (turns, events) through a second client without a read
    timeout, two connections per process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from imagegate_server.jobs.model import JobRecord, JobState, now_ms
from imagegate_server.jobs.redis_events import job_events
from imagegate_server.jobs.redis_queue import RedisQueue
from imagegate_server.jobs.redis_records import flat_fields, record_in, record_of, text
from imagegate_server.jobs.redis_scripts import JobScripts
from imagegate_server.jobs.store import (
    ClientJobs,
    Created,
    JobEvent,
    Lapsed,
    Page,
    QueueFull,
    page_of,
)
from imagegate_server.redis_connection import RedisConnection

BLOCK_MS = 5000
"""The longest one blocking read waits (the blocking connection's timeout is longer)."""


class RedisJobStore:
    """:class:`~.store.JobStore` in Redis. ``redis``: the gateway's connection (scripts
    and reads, its short timeouts); ``blocking``: one to the same deployment whose
    timeout outlasts :data:`BLOCK_MS`, for the blocking reads. Both are closed by
    their owner."""

    backend = "redis"

    def __init__(
        self, redis: RedisConnection, blocking: RedisConnection, prefix: str = "imagegate:"
    ) -> None:
        self._redis = redis
        self._blocking = blocking
        self._scripts = JobScripts(redis, prefix)
        self._run = self._scripts.run
        self._p = self._scripts.prefix
        self._queue = RedisQueue(redis, blocking, self._scripts, BLOCK_MS)

    # Jobs --------------------------------------------------------------------------

    async def create(
        self,
        record: JobRecord,
        max_queued: int | None,
        lease_ms: int = 60_000,
        claim_for: str = "",
    ) -> Created | QueueFull:
        ttl = max(1, record.expires_ms - record.created_ms) + 86_400_000
        reply = await self._run(
            "create", record.id, record.client, record.kind.value, record.request_id or "",
            -1 if max_queued is None else max_queued, record.created_ms,
            record.updated_ms + lease_ms, ttl, claim_for, *flat_fields(record),
        )  # fmt: skip
        if reply[0] == 2:
            return QueueFull(int(reply[1]))
        if reply[0] == 0:
            return Created(record_of(text(reply[1]), reply[2]), False)
        if reply[0] == 3:
            return Created(record.with_(owner=claim_for), True, claimed=True)
        return Created(record, True)

    async def get(self, client: str, job_id: str) -> JobRecord | None:
        key = self._p + "job:" + job_id
        flat = await self._redis.call(lambda client: client.hgetall(key))
        if not flat:
            return None
        pairs = [item for pair in flat.items() for item in pair]
        record = record_of(job_id, pairs)
        expired = record.state.done and record.expires_ms <= now_ms()
        return record if record.client == client and not expired else None

    async def watch(self, client: str, job_id: str, for_ms: int) -> JobRecord | None:
        flat = await self._run("watch", client, job_id, max(1, for_ms))
        if not flat:
            return None
        record = record_of(job_id, flat)
        return None if record.state.done and record.expires_ms <= now_ms() else record

    async def page(
        self, client: str, page_size: int, page_token: str, state: JobState | None
    ) -> Page:
        score, _, after_id = page_token.partition(".")
        if not (score.isdigit() and after_id):
            score, after_id = "+inf", ""
        state_value = state.value if state else ""
        rows = await self._run("list", client, score, after_id, page_size + 1, state_value)
        return page_of([record_in(row) for row in rows], page_size)

    async def delete(self, client: str, job_id: str) -> JobRecord | None:
        reply = await self._run("delete", client, job_id)
        if not reply:
            return None
        record = record_of(job_id, reply[1])
        return record

    async def discard(self, record: JobRecord) -> None:
        await self._run("discard", record.id)

    # Running -----------------------------------------------------------------------

    async def claim(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        return await self._queue.claim(owner, lease_ms, wait_s)

    async def release(self, record: JobRecord, retry_at_ms: int) -> None:
        await self._run("release", record.id, record.client, retry_at_ms)

    async def mark_sent(self, record: JobRecord, now_ms: int, slot: str = "") -> JobRecord | None:
        changed = await self._run("mark_sent", record.id, record.owner, now_ms, slot)
        if not changed:
            return None
        return record.with_(
            state=JobState.RUNNING, sent=True, started_ms=now_ms, updated_ms=now_ms, slot=slot
        )

    async def progress(self, record: JobRecord, partial_images: int) -> None:
        await self._run("progress", record.id, partial_images, now_ms())

    async def finish(
        self,
        record: JobRecord,
        state: JobState,
        outcome: bytes,
        cost_micros: int | None,
        expires_ms: int,
    ) -> JobRecord | None:
        cost = "" if cost_micros is None else cost_micros
        now = now_ms()
        changed = await self._run("finish", record.id, state.value, outcome, cost, now, expires_ms)
        if not changed:
            return None
        return record.with_(
            state=state, outcome=outcome, cost_micros=cost_micros, ended_ms=now,
            updated_ms=now, expires_ms=expires_ms, owner="",
        )  # fmt: skip

    async def renew(self, owner: str, job_ids: Sequence[str], lease_ms: int) -> None:
        if job_ids:
            await self._run("renew", owner, now_ms() + lease_ms, *job_ids)

    async def reap(self, now_ms: int, expires_ms: int, error: bytes, limit: int) -> list[Lapsed]:
        reply = await self._run("reap", now_ms, expires_ms, error, limit)
        return [Lapsed(record_in(reply[i + 1]), bool(reply[i])) for i in range(0, len(reply), 2)]

    async def request_cancel(
        self, client: str, job_id: str, outcome: bytes, now_ms: int, expires_ms: int
    ) -> tuple[JobRecord, bool] | None:
        reply = await self._run("cancel", client, job_id, outcome, now_ms, expires_ms)
        if not reply:
            return None
        return record_of(job_id, reply[1]), bool(reply[0])

    # Figures -----------------------------------------------------------------------

    async def client_jobs(self, client: str) -> ClientJobs:
        queued, held, oldest = await self._run("client_jobs", client)
        oldest_text = text(oldest)
        return ClientJobs(int(queued), int(held), int(oldest_text) if oldest_text else None)

    async def queue_lengths(self) -> dict[str, ClientJobs]:
        key = self._p + "clients"
        clients = await self._redis.call(lambda client: client.smembers(key))
        figures = {}
        for client in sorted(text(c) for c in clients)[:1000]:
            jobs = await self.client_jobs(client)
            if jobs.queued or jobs.running:
                figures[client] = jobs
        return figures

    async def expired(self, now_ms: int, limit: int) -> list[JobRecord]:
        rows = await self._run("expired", now_ms, limit)
        return [record_in(row) for row in rows]

    # Events ------------------------------------------------------------------------

    def events(self) -> AsyncIterator[JobEvent]:
        return job_events(self._redis, self._blocking, self._p + "events", BLOCK_MS)

    async def aclose(self) -> None:
        """The clients belong to whoever made them."""
