"""The Redis limiter: limits and spend shared by every replica that uses the same Redis.

One round trip admits a call: ``admit.lua`` checks and charges all of one client's
limits at once. Gateway-wide rates live under their own key and are charged first by
``ceiling_admit.lua`` (see the package docstring for that two-step trade-off).
While Redis cannot be reached, :class:`OutagePolicy` (:mod:`.outage`) decides per
kind of limit (:class:`StoreHealth` logs its start and end). Key naming lives here; the
scripts' text is :mod:`.lua`, their arguments and replies :mod:`.redis_wire`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from imagegate_server.limits import lua, redis_wire
from imagegate_server.limits.base import DONE_RETENTION_S
from imagegate_server.limits.model import (
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    ClientSpend,
    ClientStatus,
    RateLimit,
    SpendListing,
    Ticket,
)
from imagegate_server.limits.outage import OutagePolicy, StoreHealth

# What "Redis is unreachable" looks like from redis-py: its own errors (connection,
# timeout, loading, auth, read-only replica, OOM), plus the OS's and asyncio's.
_STORE_ERRORS = (RedisError, OSError, TimeoutError)
# A client's key after the prefix: its hash tag (the name percent-encoded) and kind.
_CLIENT_KEY = re.compile(r"\{c:([^{}]*)\}:(rates|open|spend|done)")
_PIPELINE = 500


def where(url: str) -> str:
    """Scheme, host and port (or socket path) of a Redis URL: never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname or '?'}:{port or 6379}"


class RedisLimiter:
    """:class:`~imagegate_server.limits.Limiter` on Redis (``redis.asyncio``)."""

    backend = "redis"

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "imagegate:",
        policy: OutagePolicy | None = None,
        probe_interval_s: float = 1.0,
        location: str = "redis",
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix must not contain braces (hash tags)")
        self._redis = client
        self._prefix = prefix
        self._health = StoreHealth("redis", location, policy or OutagePolicy(), probe_interval_s)
        self._scripts = {name: client.register_script(lua.source(name)) for name in lua.NAMES}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "imagegate:",
        timeout_s: float = 0.5,
        max_connections: int = 64,
        policy: OutagePolicy | None = None,
        probe_interval_s: float = 1.0,
    ) -> RedisLimiter:
        """A limiter on the Redis at ``url``; connects on first use, not here."""
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            # Waiting for a free connection is local congestion, not an outage: give
            # it longer than one command gets.
            timeout=max(5.0, timeout_s),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # One immediate retry hides a pooled connection that a Redis restart
            # closed; the scripts are idempotent per ticket, so a retry after a lost
            # reply charges nothing twice (the gateway-wide step excepted).
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        return cls(
            client,
            prefix=prefix,
            policy=policy,
            probe_interval_s=probe_interval_s,
            location=where(url),
        )

    @property
    def reachable(self) -> bool:
        return self._health.reachable

    @property
    def policy(self) -> OutagePolicy:
        return self._health.policy

    @property
    def outages(self) -> int:
        """Outages seen since start (for metrics)."""
        return self._health.outages

    # Keys ---------------------------------------------------------------------------

    def client_keys(self, client: str) -> tuple[str, str, str, str]:
        """rates, open, spend, done: one hash tag per client, so one Cluster slot."""
        tag = f"{self._prefix}{{c:{quote(client, safe='')}}}"
        return f"{tag}:rates", f"{tag}:open", f"{tag}:spend", f"{tag}:done"

    def gateway_key(self) -> str:
        return f"{self._prefix}{{gateway}}:rates"

    # The interface --------------------------------------------------------------------

    async def admit(self, admission: Admission) -> Ticket:
        started_up = self._health.reachable
        if self._health.skip():
            return self._health.uncounted(admission)
        ceiling = tuple(rate for rate in admission.rates if rate.gateway_wide)
        own = tuple(rate for rate in admission.rates if not rate.gateway_wide)
        ticket = secrets.token_hex(10)
        try:
            if ceiling:
                reply = await self._run(
                    "ceiling_admit", [self.gateway_key()], redis_wire.rate_args(ceiling)
                )
                if reply[0] == 0:
                    self._health.up(started_up)
                    raise redis_wire.refused(admission, reply)
            reply = await self._run(
                "admit",
                list(self.client_keys(admission.client)),
                redis_wire.admit_args(ticket, admission, own),
            )
        except _STORE_ERRORS as error:
            self._health.down(error)
            return self._health.uncounted(admission)
        self._health.up(started_up)
        if reply[0] == 0:
            if ceiling:
                await self._refund(ceiling)
            raise redis_wire.refused(admission, reply)
        if admission.replaces is not None:
            admission.replaces._settled.claim()  # the script freed it with this admission
        return Ticket(ticket, admission.client, admission.reserve_micros, accounted=True)

    async def settle(self, ticket: Ticket, cost_micros: int) -> None:
        if cost_micros < 0:
            raise ValueError("cost_micros must be >= 0")
        if not ticket._settled.claim():
            return
        if not ticket.accounted and (cost_micros == 0 or not self._health.reachable):
            # Let through uncounted: nothing to free. Its cost is still recorded when
            # Redis is back by now; while it is down, nothing is probed for it.
            return
        started_up = self._health.reachable
        if self._health.skip():
            return
        open_key, spend_key, done_key = self.client_keys(ticket.client)[1:]
        try:
            await self._run(
                "settle",
                [open_key, spend_key, done_key],
                [ticket.id, cost_micros, round(DONE_RETENTION_S * 1_000_000)],
            )
        except _STORE_ERRORS as error:
            # Its slot and reservation expire on their own (hold_s).
            self._health.down(error)
            return
        self._health.up(started_up)

    async def status(
        self,
        client: str,
        rates: Sequence[RateLimit],
        max_concurrent: int | None,
        budgets: Sequence[Budget],
    ) -> ClientStatus:
        own = [rate for rate in rates if not rate.gateway_wide]
        ceiling = [rate for rate in rates if rate.gateway_wide]

        async def read() -> ClientStatus:
            reply = await self._run(
                "status", list(self.client_keys(client)[:3]), [rate.name for rate in own]
            )
            peek = (
                await self._run("peek_rates", [self.gateway_key()], [r.name for r in ceiling])
                if ceiling
                else [reply[0]]
            )
            return redis_wire.client_status(client, rates, max_concurrent, budgets, reply, peek)

        return await self._health.read("status", read, _STORE_ERRORS)

    async def list_spend(self, limit: int = MAX_SPEND_LISTING) -> SpendListing:
        """SCANs the prefix's ``:open`` and ``:spend`` keys (never KEYS) and reads each
        client's figures with ``status.lua``, pipelined :data:`_PIPELINE` at a time (each
        command in its client's slot), until more than ``limit`` clients qualify; which
        ones are listed then is SCAN's order."""
        return await self._health.read("spend", lambda: self._scan_spend(limit), _STORE_ERRORS)

    async def _scan_spend(self, limit: int) -> SpendListing:
        found: dict[str, ClientSpend] = {}
        sha = await self._redis.script_load(lua.source("status"))
        seen: set[str] = set()
        batch: list[str] = []
        async for key in self._redis.scan_iter(match=self._client_pattern(), count=1000):
            match = _CLIENT_KEY.fullmatch(key[len(self._prefix) :])
            if match is None or match.group(2) not in ("open", "spend"):
                continue
            name = unquote(match.group(1))
            if name not in seen:
                seen.add(name)
                batch.append(name)
            if len(batch) == _PIPELINE:
                await self._read_spend(sha, batch, found)
                batch = []
                if len(found) > limit:
                    break
        if batch and len(found) <= limit:
            await self._read_spend(sha, batch, found)
        seconds = int((await self._redis.time())[0])
        listed = tuple(found[name] for name in sorted(found)[:limit])
        return SpendListing(listed, len(found) > limit, datetime.fromtimestamp(seconds, UTC))

    def _client_pattern(self) -> str:
        # The prefix matched literally (it may hold glob characters), then any client.
        return re.sub(r"([\\*?\[\]])", r"\\\1", self._prefix) + "{c:*}:*"

    async def _read_spend(self, sha: str, clients: list[str], into: dict[str, ClientSpend]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for client in clients:
            pipe.evalsha(sha, 3, *self.client_keys(client)[:3])
        for client, reply in zip(clients, await pipe.execute(), strict=True):
            entry = redis_wire.client_spend(client, reply)
            if entry.spent_this_month_micros or entry.in_flight:
                into[client] = entry

    async def aclose(self) -> None:
        await self._redis.aclose(close_connection_pool=True)

    # Internals --------------------------------------------------------------------------

    async def _run(self, name: str, keys: list[str], args: Sequence[str | int]) -> list[Any]:
        # EVALSHA; redis-py loads the script and retries when Redis answers NOSCRIPT
        # (a restarted or failed-over Redis has an empty script cache).
        reply: list[Any] = await self._scripts[name](keys=keys, args=args)
        return reply

    async def _refund(self, ceiling: Sequence[RateLimit]) -> None:
        try:
            await self._run("ceiling_refund", [self.gateway_key()], redis_wire.refund_args(ceiling))
        except _STORE_ERRORS as error:
            # The ceiling stays charged for a call that did not run: conservative.
            self._health.down(error)
