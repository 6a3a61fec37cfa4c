"""Jobs in Redis, shared by every replica (``IMAGEGATE_REDIS_URL``).

Why these primitives
    The turns of clients with queued work are a Redis stream read by a consumer
    group (``XREADGROUP``): a replica with a free runner blocks on it (no polling),
    Redis hands each entry to exactly one replica, and an entry handed to a
    replica that died before it acted stays in the group's pending list, where
    ``XAUTOCLAIM`` gives it to another after a lease period. A stream holds at most
    one turn per client, and taking a turn (one job) puts the client's next turn
    at the end: round robin across clients, whatever each has queued. Each job's
    own lease (a sorted set by expiry) outlives its runner only by the lease
    period; any replica's reaper then re-queues it or fails it, in a script that
    checks what it changes. Job ends and cancels go out on one capped stream that
    each replica reads with one blocking ``XREAD`` (a cancel reaches the runner in
    one round trip, a waiting ``WaitOperation`` wakes on it, and a replica that
    reconnects reads on from where it was instead of missing what pub/sub would
    have dropped).
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

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from imagegate_server.jobs.local_store import page_token_after
from imagegate_server.jobs.model import JobKind, JobRecord, JobState, now_ms
from imagegate_server.jobs.redis_scripts import JobScripts
from imagegate_server.jobs.store import ClientJobs, Created, JobEvent, Lapsed, Page, QueueFull
from imagegate_server.redis_connection import RedisConnection, StoreFailure

log = logging.getLogger(__name__)

GROUP = "runners"
_FIELDS = {
    "c": "client", "k": "kind", "o": "operation", "s": "state", "cr": "created_ms",
    "up": "updated_ms", "ex": "expires_ms", "m": "model", "n": "n", "rid": "request_id",
    "fp": "fingerprint", "est": "estimate_micros", "cost": "cost_micros", "st": "started_ms",
    "en": "ended_ms", "pi": "partial_images", "sent": "sent", "own": "owner",
    "cx": "cancel_requested", "sl": "slot", "req": "request", "out": "outcome",
}  # fmt: skip
_INTS = {"created_ms", "updated_ms", "expires_ms", "n", "estimate_micros", "partial_images"}
_OPTIONAL_INTS = {"cost_micros", "started_ms", "ended_ms"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _record(job_id: str, flat: Sequence[Any]) -> JobRecord:
    raw = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    values: dict[str, Any] = {}
    for short, name in _FIELDS.items():
        value = raw.get(short, b"")
        if name in ("request", "outcome"):
            values[name] = value if isinstance(value, bytes) else str(value).encode()
            continue
        text = _text(value)
        if name in _INTS:
            values[name] = int(text or 0)
        elif name in _OPTIONAL_INTS:
            values[name] = int(text) if text else None
        elif name in ("sent", "cancel_requested"):
            values[name] = text == "1"
        else:
            values[name] = text
    return JobRecord(
        id=job_id,
        kind=JobKind(values.pop("kind")),
        state=JobState(values.pop("state")),
        request_id=values.pop("request_id") or None,
        **values,
    )


def _flat(record: JobRecord) -> list[str | int | bytes]:
    r = record
    values: dict[str, str | int | bytes] = {
        "id": r.id, "c": r.client, "k": r.kind.value, "o": r.operation, "s": r.state.value,
        "cr": r.created_ms, "up": r.updated_ms, "ex": r.expires_ms, "m": r.model, "n": r.n,
        "rid": r.request_id or "", "fp": r.fingerprint, "est": r.estimate_micros,
        "cost": "" if r.cost_micros is None else r.cost_micros,
        "st": "" if r.started_ms is None else r.started_ms,
        "en": "" if r.ended_ms is None else r.ended_ms, "pi": r.partial_images,
        "sent": int(r.sent), "own": r.owner, "cx": int(r.cancel_requested), "sl": r.slot,
        "req": r.request, "out": r.outcome,
    }  # fmt: skip
    return [item for pair in values.items() for item in pair]


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
        self._p = self._scripts.prefix
        self._ready = str(self._scripts.ready_key)
        self._group_ready = False
        self._next_autoclaim = 0

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._scripts.run(name.lower(), *args)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return

        async def create(client: Any) -> None:
            try:
                await client.xgroup_create(self._ready, GROUP, id="0", mkstream=True)
            except Exception as error:  # BUSYGROUP: it exists already
                if "BUSYGROUP" not in str(error):
                    raise

        await self._redis.call(create)
        self._group_ready = True

    # Jobs --------------------------------------------------------------------------

    async def create(
        self, record: JobRecord, max_queued: int | None, lease_ms: int = 60_000
    ) -> Created | QueueFull:
        ttl = max(1, record.expires_ms - record.created_ms) + 86_400_000
        reply = await self._run(
            "CREATE", record.id, record.client, record.kind.value, record.request_id or "",
            -1 if max_queued is None else max_queued, record.created_ms,
            record.updated_ms + lease_ms, ttl, *_flat(record),
        )  # fmt: skip
        if reply[0] == 2:
            return QueueFull(int(reply[1]))
        if reply[0] == 0:
            return Created(_record(_text(reply[1]), reply[2]), False)
        return Created(record, True)

    async def get(self, client: str, job_id: str) -> JobRecord | None:
        key = self._p + "job:" + job_id
        flat = await self._redis.call(lambda client: client.hgetall(key))
        if not flat:
            return None
        pairs = [item for pair in flat.items() for item in pair]
        record = _record(job_id, pairs)
        expired = record.state.done and record.expires_ms <= now_ms()
        return record if record.client == client and not expired else None

    async def page(
        self, client: str, page_size: int, page_token: str, state: JobState | None
    ) -> Page:
        score, _, after_id = page_token.partition(".")
        if not (score.isdigit() and after_id):
            score, after_id = "+inf", ""
        state_value = state.value if state else ""
        rows = await self._run("LIST", client, score, after_id, page_size + 1, state_value)
        records = tuple(_record(_id_of(row), row) for row in rows)
        more = len(records) > page_size
        records = records[:page_size]
        return Page(records, page_token_after(records[-1]) if more and records else "")

    async def delete(self, client: str, job_id: str) -> JobRecord | None:
        reply = await self._run("DELETE", client, job_id)
        if not reply:
            return None
        record = _record(job_id, reply[1])
        return record

    async def discard(self, record: JobRecord) -> None:
        await self._run("DISCARD", record.id)

    # Running -----------------------------------------------------------------------

    async def claim(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        await self._ensure_group()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            record = await self._claim_once(owner, lease_ms, deadline - loop.time())
            if record is not None or loop.time() >= deadline:
                return record

    async def _claim_once(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        entries: list[tuple[Any, Any]] = []
        if now_ms() >= self._next_autoclaim:
            # A turn handed to a replica that died before taking it: after a lease
            # (looked for every half lease, not on every claim: it is a round trip).
            self._next_autoclaim = now_ms() + lease_ms // 2
            _, claimed, *_ = await self._redis.call(
                lambda client: client.xautoclaim(
                    self._ready, GROUP, owner, min_idle_time=lease_ms, start_id="0-0", count=1
                )
            )
            entries = [(i, fields) for i, fields in claimed if fields]
        if not entries:
            next_turn = int(await self._run("UNPARK", now_ms()))
            block_ms = max(1, min(BLOCK_MS, round(wait_s * 1000)))
            if next_turn >= 0:
                block_ms = max(1, min(block_ms, next_turn - now_ms()))
            reply: Any = await self._blocking.call(
                lambda client: client.xreadgroup(
                    GROUP, owner, {self._ready: ">"}, count=1, block=block_ms
                )
            )
            entries = [tuple(entry) for _, stream in reply or () for entry in stream]
        for entry_id, fields in entries:
            client = _text(fields.get("c", fields.get(b"c", b"")))
            flat = await self._run("TAKE", _text(entry_id), client, owner, now_ms(), lease_ms)
            if flat:
                return _record(_id_of(flat), flat)
        return None

    async def release(self, record: JobRecord, retry_at_ms: int) -> None:
        await self._run("RELEASE", record.id, record.client, retry_at_ms)

    async def mark_sent(self, record: JobRecord, now_ms: int, slot: str = "") -> JobRecord | None:
        changed = await self._run("MARK_SENT", record.id, record.owner, now_ms, slot)
        if not changed:
            return None
        return record.with_(
            state=JobState.RUNNING, sent=True, started_ms=now_ms, updated_ms=now_ms, slot=slot
        )

    async def progress(self, record: JobRecord, partial_images: int) -> None:
        await self._run("PROGRESS", record.id, partial_images, now_ms())

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
        changed = await self._run("FINISH", record.id, state.value, outcome, cost, now, expires_ms)
        if not changed:
            return None
        return record.with_(
            state=state, outcome=outcome, cost_micros=cost_micros, ended_ms=now,
            updated_ms=now, expires_ms=expires_ms, owner="",
        )  # fmt: skip

    async def renew(self, owner: str, job_ids: Sequence[str], lease_ms: int) -> None:
        if job_ids:
            await self._run("RENEW", owner, now_ms() + lease_ms, *job_ids)

    async def reap(self, now_ms: int, expires_ms: int, error: bytes, limit: int) -> list[Lapsed]:
        reply = await self._run("REAP", now_ms, expires_ms, error, limit)
        return [
            Lapsed(_record(_id_of(reply[i + 1]), reply[i + 1]), bool(reply[i]))
            for i in range(0, len(reply), 2)
        ]

    async def request_cancel(
        self, client: str, job_id: str, outcome: bytes, now_ms: int, expires_ms: int
    ) -> tuple[JobRecord, bool] | None:
        reply = await self._run("CANCEL", client, job_id, outcome, now_ms, expires_ms)
        if not reply:
            return None
        return _record(job_id, reply[1]), bool(reply[0])

    # Figures -----------------------------------------------------------------------

    async def client_jobs(self, client: str) -> ClientJobs:
        queued, held, oldest = await self._run("CLIENT_JOBS", client)
        oldest_text = _text(oldest)
        return ClientJobs(int(queued), int(held), int(oldest_text) if oldest_text else None)

    async def queue_lengths(self) -> dict[str, ClientJobs]:
        key = self._p + "clients"
        clients = await self._redis.call(lambda client: client.smembers(key))
        figures = {}
        for client in sorted(_text(c) for c in clients)[:1000]:
            jobs = await self.client_jobs(client)
            if jobs.queued or jobs.running:
                figures[client] = jobs
        return figures

    async def expired(self, now_ms: int, limit: int) -> list[JobRecord]:
        rows = await self._run("EXPIRED", now_ms, limit)
        return [_record(_id_of(row), row) for row in rows]

    # Events ------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[JobEvent]:
        """Every replica's job events from now on; after a broken connection, on from
        the last one read (events the stream still holds are not missed)."""
        events = self._p + "events"
        last = await self._latest_event()
        while True:
            try:
                reply = await self._blocking.call(partial(_read_events, events, last))
            except StoreFailure as error:
                log.warning("jobs event stream unreachable", extra={"error": type(error).__name__})
                await asyncio.sleep(1.0)
                continue
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    field = {_text(k): _text(v) for k, v in fields.items()}
                    kind = field.get("t", "")
                    if kind in ("done", "cancel"):
                        yield JobEvent(kind, field.get("id", ""), field.get("o", ""))  # type: ignore[arg-type]

    async def _latest_event(self) -> str:
        """The id of the newest event (reading on from it misses nothing later)."""
        while True:
            try:
                newest = await self._redis.call(partial(_newest_event, self._p + "events"))
            except StoreFailure:
                await asyncio.sleep(1.0)
                continue
            return _text(newest[0][0]) if newest else "0-0"

    async def aclose(self) -> None:
        """The clients belong to whoever made them."""


def _id_of(flat: Sequence[Any]) -> str:
    """The id a job hash carries (field ``id``)."""
    for i in range(0, len(flat), 2):
        if _text(flat[i]) == "id":
            return _text(flat[i + 1])
    raise ValueError("a job hash without its id")


async def _read_events(key: str, after: str, client: Any) -> Any:
    return await client.xread({key: after}, block=BLOCK_MS)


async def _newest_event(key: str, client: Any) -> Any:
    return await client.xrevrange(key, count=1)
