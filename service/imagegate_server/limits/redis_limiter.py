"""The Redis limiter: limits and spend shared by every replica that uses the same Redis.

One round trip admits a call: ``admit.lua`` checks and charges all of one client's
limits at once. Gateway-wide rates live under their own key and are charged first by
``ceiling_admit.lua`` (see the package docstring for that two-step trade-off).
While Redis cannot be reached, :class:`OutagePolicy` (:mod:`.outage`) decides per
kind of limit. Key naming, the outage state and its log lines live here; the
scripts' text is :mod:`.lua`, their arguments and replies :mod:`.redis_wire`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from imagegate_server.errors import LimiterUnavailable
from imagegate_server.limits import lua, redis_wire
from imagegate_server.limits.base import DONE_RETENTION_S
from imagegate_server.limits.model import (
    Admission,
    Budget,
    ClientStatus,
    RateLimit,
    Ticket,
)
from imagegate_server.limits.outage import OutagePolicy

log = logging.getLogger(__name__)

# What "Redis is unreachable" looks like from redis-py: its own errors (connection,
# timeout, loading, auth, read-only replica, OOM), plus the OS's and asyncio's.
_STORE_ERRORS = (RedisError, OSError, TimeoutError)


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
        self.policy = policy or OutagePolicy()
        self._probe_interval_s = probe_interval_s
        self._location = location
        self._scripts = {name: client.register_script(lua.source(name)) for name in lua.NAMES}
        self._reachable = True
        self._probe_at = 0.0
        self.outages = 0
        """Outages seen since start (for metrics)."""

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
        return self._reachable

    # Keys ---------------------------------------------------------------------------

    def client_keys(self, client: str) -> tuple[str, str, str, str]:
        """rates, open, spend, done: one hash tag per client, so one Cluster slot."""
        tag = f"{self._prefix}{{c:{quote(client, safe='')}}}"
        return f"{tag}:rates", f"{tag}:open", f"{tag}:spend", f"{tag}:done"

    def gateway_key(self) -> str:
        return f"{self._prefix}{{gateway}}:rates"

    # The interface --------------------------------------------------------------------

    async def admit(self, admission: Admission) -> Ticket:
        started_up = self._reachable
        if self._skip_store():
            return self._uncounted(admission)
        ceiling = tuple(rate for rate in admission.rates if rate.gateway_wide)
        own = tuple(rate for rate in admission.rates if not rate.gateway_wide)
        ticket = secrets.token_hex(10)
        try:
            if ceiling:
                reply = await self._run(
                    "ceiling_admit", [self.gateway_key()], redis_wire.rate_args(ceiling)
                )
                if reply[0] == 0:
                    self._up(started_up)
                    raise redis_wire.refused(admission, reply)
            reply = await self._run(
                "admit",
                list(self.client_keys(admission.client)),
                redis_wire.admit_args(ticket, admission, own),
            )
        except _STORE_ERRORS as error:
            self._down(error)
            return self._uncounted(admission)
        self._up(started_up)
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
        if not ticket.accounted and (cost_micros == 0 or not self._reachable):
            # Let through uncounted: nothing to free. Its cost is still recorded when
            # Redis is back by now; while it is down, nothing is probed for it.
            return
        started_up = self._reachable
        if self._skip_store():
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
            self._down(error)
            return
        self._up(started_up)

    async def status(
        self,
        client: str,
        rates: Sequence[RateLimit],
        max_concurrent: int | None,
        budgets: Sequence[Budget],
    ) -> ClientStatus:
        started_up = self._reachable
        if self._skip_store():
            raise self._unavailable("status")
        own = [rate for rate in rates if not rate.gateway_wide]
        ceiling = [rate for rate in rates if rate.gateway_wide]
        try:
            reply = await self._run(
                "status", list(self.client_keys(client)[:3]), [rate.name for rate in own]
            )
            peek = (
                await self._run("peek_rates", [self.gateway_key()], [r.name for r in ceiling])
                if ceiling
                else [reply[0]]
            )
        except _STORE_ERRORS as error:
            self._down(error)
            raise self._unavailable("status") from None
        self._up(started_up)
        return redis_wire.client_status(client, rates, max_concurrent, budgets, reply, peek)

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
            self._down(error)

    def _uncounted(self, admission: Admission) -> Ticket:
        closed = self.policy.closed_kinds(admission)
        if closed:
            raise self._unavailable(" and ".join(closed) + " limits")
        return Ticket(secrets.token_hex(10), admission.client, 0, accounted=False)

    @staticmethod
    def _unavailable(what: str) -> LimiterUnavailable:
        return LimiterUnavailable(
            f"the shared limits store is unreachable, so {what} cannot be checked; retry shortly"
        )

    # Outage state: one warning when it starts, one info line when it ends ------------

    def _skip_store(self) -> bool:
        """While Redis is down, only one call per probe interval tries it."""
        if self._reachable:
            return False
        now = time.monotonic()
        if now < self._probe_at:
            return True
        self._probe_at = now + self._probe_interval_s
        return False

    def _down(self, error: BaseException) -> None:
        self._probe_at = time.monotonic() + self._probe_interval_s
        if self._reachable:
            self._reachable = False
            self.outages += 1
            log.warning(
                "limits store unreachable (%s from %s); until it answers: %s",
                type(error).__name__,
                self._location,
                self.policy.describe(),
                extra={"limiter": "redis", "error": type(error).__name__},
            )

    def _up(self, started_up: bool) -> None:
        # Only a command sent while Redis counted as down proves it is back: a slow
        # reply to one sent before the outage says nothing about now.
        if not self._reachable and not started_up:
            self._reachable = True
            log.info(
                "limits store reachable again (%s)",
                self._location,
                extra={"limiter": "redis"},
            )
