"""Every replica's job events (a job ended, a cancel asked for), read from the capped
stream ``P events`` that the scripts write (:mod:`.redis_scripts`).

Each process reads it with one blocking ``XREAD`` on the blocking connection: a
cancel reaches the runner in one round trip and a waiting ``WaitOperation`` wakes
on it. A stream rather than pub/sub: a process that reconnects reads on from the
last event it read instead of missing what pub/sub would have dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from imagegate_server.jobs.redis_records import text
from imagegate_server.jobs.store import JobEvent
from imagegate_server.redis_connection import RedisConnection, StoreFailure

log = logging.getLogger(__name__)


async def job_events(
    redis: RedisConnection, blocking: RedisConnection, key: str, block_ms: int
) -> AsyncIterator[JobEvent]:
    """The events of stream ``key`` from now on (each read blocks up to ``block_ms``);
    after a broken connection, on from the last one read (events the stream still
    holds are not missed)."""
    last = await _latest_event(redis, key)
    while True:
        try:
            reply = await blocking.call(partial(_read_events, key, last, block_ms))
        except StoreFailure as error:
            log.warning("jobs event stream unreachable", extra={"error": type(error).__name__})
            await asyncio.sleep(1.0)
            continue
        for _, entries in reply or ():
            for entry_id, fields in entries:
                last = text(entry_id)
                field = {text(k): text(v) for k, v in fields.items()}
                kind = field.get("t", "")
                if kind in ("done", "cancel"):
                    yield JobEvent(kind, field.get("id", ""), field.get("o", ""))  # type: ignore[arg-type]


async def _latest_event(redis: RedisConnection, key: str) -> str:
    """The id of the newest event (reading on from it misses nothing later)."""
    while True:
        try:
            newest = await redis.call(partial(_newest_event, key))
        except StoreFailure:
            await asyncio.sleep(1.0)
            continue
        return text(newest[0][0]) if newest else "0-0"


async def _read_events(key: str, after: str, block_ms: int, client: Any) -> Any:
    return await client.xread({key: after}, block=block_ms)


async def _newest_event(key: str, client: Any) -> Any:
    return await client.xrevrange(key, count=1)
