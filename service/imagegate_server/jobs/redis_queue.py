"""Claiming the next queued job on Redis, fairly across clients and replicas.

The turns of clients with queued work are the stream ``P ready`` read by the
consumer group ``runners`` (``XREADGROUP``): a replica with a free runner blocks on
it (no polling), and Redis hands each entry to exactly one replica. Taking a turn
(``take.lua``) gives one job of its client and puts the client's next turn at the
end: round robin across clients, whatever each has queued. A turn handed to a
replica that died before it acted stays in the group's pending list, where
``XAUTOCLAIM`` gives it to another after a lease period. Turns a limit parked come
back (``unpark.lua``) when their time comes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from imagegate_server.jobs.model import JobRecord, now_ms
from imagegate_server.jobs.redis_records import record_in, text
from imagegate_server.jobs.redis_scripts import JobScripts
from imagegate_server.redis_connection import RedisConnection

GROUP = "runners"


class RedisQueue:
    """``blocking``: the connection for the blocking read of turns, each read up to
    ``block_ms``."""

    def __init__(
        self, redis: RedisConnection, blocking: RedisConnection, scripts: JobScripts, block_ms: int
    ) -> None:
        self._redis = redis
        self._blocking = blocking
        self._scripts = scripts
        self._ready = str(scripts.ready_key)
        self._block_ms = block_ms
        self._group_ready = False
        self._next_autoclaim = 0

    async def claim(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        """The next queued job, leased to ``owner``; waits up to ``wait_s`` for one."""
        await self._ensure_group()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            record = await self._claim_once(owner, lease_ms, deadline - loop.time())
            if record is not None or loop.time() >= deadline:
                return record

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
            next_turn = int(await self._scripts.run("unpark", now_ms()))
            block_ms = max(1, min(self._block_ms, round(wait_s * 1000)))
            if next_turn >= 0:
                block_ms = max(1, min(block_ms, next_turn - now_ms()))
            reply: Any = await self._blocking.call(
                lambda client: client.xreadgroup(
                    GROUP, owner, {self._ready: ">"}, count=1, block=block_ms
                )
            )
            entries = [tuple(entry) for _, stream in reply or () for entry in stream]
        for entry_id, fields in entries:
            client = text(fields.get("c", fields.get(b"c", b"")))
            take = (text(entry_id), client, owner, now_ms(), lease_ms)
            flat = await self._scripts.run("take", *take)
            if flat:
                return record_in(flat)
        return None
