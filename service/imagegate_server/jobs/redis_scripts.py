"""The Lua scripts of :mod:`.redis_store` (each change of a job is one of them), read
from this package's ``scripts/`` folder and run on the jobs' one Cluster slot.

Each script is ``common.lua`` (the key prefix and the steps several scripts take)
followed by its own body. Every key is ``<prefix>{jobs}:<name>`` (``P`` below, the
first argument of every script), so all of them hash to one Cluster slot and a
script may touch any of them; ``KEYS[1]`` is always ``P .. 'ready'``, which routes
the script to that slot's node. Job hashes use short field names (``s`` state,
``c`` client, ``own`` owner...; :mod:`.redis_records` maps them).

    P job:<id>          hash: the job (expires a day after its retention ends)
    P rid:<client>:<id> the job of a request id
    P q:<client>        list: the client's queued job ids, oldest first
    P list:<client>     sorted set: the client's submitted jobs by creation time
    P running:<client>  set: the client's jobs held by a runner
    P ready             stream (group ``runners``): one entry per client whose
                        turn it is; taking one gives one job and puts the client's
                        next turn at the end (round robin across clients)
    P tokened           hash: clients with a turn in ``ready`` or in ``parked``
    P parked            sorted set: client -> when its turn comes back (a limit
                        refused its last job; a job of it ending brings it back)
    P leases            sorted set: job id -> when its runner's lease lapses
    P expiry            sorted set: finished job id -> when it is forgotten
    P watched:<id>      flag (expiring): a process waits for the job's end, so its
                        end goes out on ``events``; unwatched ends are not sent
    P clients           set: clients with queued or held jobs (metrics)
    P events            stream (capped): a watched job ended / cancel asked for
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from imagegate_server.redis_connection import KeySpace, RedisConnection, Script

NAMES = (
    "create", "take", "unpark", "release", "mark_sent", "progress", "finish", "renew",
    "reap", "cancel", "delete", "discard", "expired", "client_jobs", "list", "watch",
)  # fmt: skip


def _read(name: str) -> str:
    return (resources.files("imagegate_server.jobs") / "scripts" / f"{name}.lua").read_text("utf-8")


@cache
def source(name: str) -> str:
    """The full text of script ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise KeyError(name)
    return _read("common") + "\n" + _read(name)


class JobScripts:
    """The scripts on one deployment under one key prefix."""

    def __init__(self, redis: RedisConnection, prefix: str) -> None:
        self._redis = redis
        (self.ready_key,) = KeySpace(prefix).keys("jobs", "ready")
        self.prefix = self.ready_key.removesuffix("ready")
        """``P``: every jobs key is this and its name."""
        self._scripts = {name: Script(source(name)) for name in NAMES}

    async def run(self, name: str, *args: Any) -> Any:
        """Script ``name``'s reply; ``args`` follow ``P`` (see each script's ARGV)."""
        return await self._redis.run(self._scripts[name], [self.ready_key], [self.prefix, *args])
