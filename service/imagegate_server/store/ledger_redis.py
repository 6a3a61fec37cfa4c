"""The storage ledger on Redis (with ``IMAGEGATE_REDIS_URL``): what each client holds
in the store, shared by every replica, beside the limiter's state.

One hash per client, ``<prefix>{c:<client>}:stored`` with fields ``bytes`` and
``objects``: the limiter's hash tag for that client, so it shares the client's
Cluster slot, and every command here touches that one key. Anonymous calls are the
client ``_anonymous`` (no client name can spell it). A removal is one script that
never takes a client below zero and deletes the hash once it holds nothing, so
keys are bounded by the clients that hold something.
"""

from __future__ import annotations

from urllib.parse import quote

from imagegate_server.redis_connection import Key, KeySpace, RedisConnection, Script
from imagegate_server.store.ledger import Holding
from imagegate_server.store.objects import ANONYMOUS

_STORED = Script(
    """
redis.call('hincrby', KEYS[1], 'bytes', ARGV[1])
return redis.call('hincrby', KEYS[1], 'objects', 1)
"""
)
_REMOVED = Script(
    """
local held = redis.call('hmget', KEYS[1], 'bytes', 'objects')
if not held[2] then return 0 end
local size = math.max(tonumber(held[1] or '0') - tonumber(ARGV[1]), 0)
local objects = math.max(tonumber(held[2]) - tonumber(ARGV[2]), 0)
if objects == 0 then
  redis.call('del', KEYS[1])
else
  redis.call('hset', KEYS[1], 'bytes', size, 'objects', objects)
end
return objects
"""
)


class RedisLedger:
    """:class:`~imagegate_server.store.StorageLedger` on the gateway's
    :class:`~imagegate_server.redis_connection.RedisConnection` (one server,
    Sentinel or Cluster), made and closed by its owner."""

    backend = "redis"

    def __init__(self, redis: RedisConnection, prefix: str = "imagegate:") -> None:
        self._redis = redis
        self._keys = KeySpace(prefix)

    def key(self, client: str | None) -> Key:
        name = ANONYMOUS if client is None else client
        (key,) = self._keys.keys(f"c:{quote(name, safe='')}", "stored")
        return key

    async def stored(self, client: str | None, size: int) -> None:
        await self._redis.run(_STORED, [self.key(client)], [max(size, 0)])

    async def removed(self, client: str | None, size: int, objects: int = 1) -> None:
        await self._redis.run(_REMOVED, [self.key(client)], [max(size, 0), max(objects, 0)])

    async def holding(self, client: str | None) -> Holding:
        key = self.key(client)
        size, objects = await self._redis.call(lambda c: c.hmget(key, "bytes", "objects"))
        return Holding(int(size or 0), int(objects or 0))
