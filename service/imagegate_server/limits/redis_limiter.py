"""The Redis limiter: limits and spend shared by every replica that uses the same Redis.

One round trip admits a call: ``admit.lua`` checks and charges all of one client's
limits at once. Gateway-wide rates live under their own key and are charged first by
``ceiling_admit.lua`` (see the package docstring for that two-step trade-off).
While Redis cannot be used (unreachable, or answering with errors), :class:`OutagePolicy`
(:mod:`.outage`) decides per kind of limit (:class:`StoreHealth` logs its start and
end). Key naming lives here; the scripts' text is :mod:`.lua`, their arguments and
replies :mod:`.redis_wire`; every command goes through
:class:`~imagegate_server.redis_connection.RedisConnection`, whatever the deployment.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from imagegate_server.limits import lua, redis_wire
from imagegate_server.limits.base import DONE_RETENTION_S
from imagegate_server.limits.model import (
    MAX_CLIENT_UPSTREAMS,
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    ClientSpend,
    ClientStatus,
    RateLimit,
    SpendListing,
    Ticket,
    UpstreamSpend,
    UpstreamStatus,
    new_ticket_id,
)
from imagegate_server.limits.outage import OutagePolicy, StoreHealth, StoreState
from imagegate_server.redis_connection import (
    Key,
    KeySpace,
    RedisConnection,
    RedisOptions,
    Script,
    StoreFailure,
)

# A client's key after the prefix: its hash tag (the name percent-encoded) and kind.
_CLIENT_KEY = re.compile(r"\{c:([^{}]*)\}:(rates|open|spend|done)")
_PIPELINE = 500


class RedisLimiter:
    """:class:`~imagegate_server.limits.Limiter` on Redis: one server, a Cluster or a
    Sentinel-watched primary, through one :class:`RedisConnection`."""

    backend = "redis"

    def __init__(
        self,
        connection: RedisConnection,
        *,
        prefix: str = "imagegate:",
        policy: OutagePolicy | None = None,
        probe_interval_s: float = 1.0,
    ) -> None:
        self._redis = connection
        self._keys = KeySpace(prefix)
        self._health = StoreHealth(
            "redis", connection.location, policy or OutagePolicy(), probe_interval_s
        )
        self._scripts = {name: Script(lua.source(name)) for name in lua.NAMES}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "imagegate:",
        policy: OutagePolicy | None = None,
        probe_interval_s: float = 1.0,
        **options: Any,
    ) -> RedisLimiter:
        """A limiter on the deployment at ``url`` (``options``: :class:`RedisOptions`'
        fields); connects on first use, not here."""
        connection = RedisConnection.from_url(url, RedisOptions(**options))
        return cls(connection, prefix=prefix, policy=policy, probe_interval_s=probe_interval_s)

    @property
    def state(self) -> StoreState:
        return self._health.state

    @property
    def problem(self) -> str | None:
        """Why Redis cannot be used right now (for operators), or None."""
        return self._health.reason

    @property
    def policy(self) -> OutagePolicy:
        return self._health.policy

    @property
    def outages(self) -> int:
        """Outages seen since start (for metrics)."""
        return self._health.outages

    @property
    def connection(self) -> RedisConnection:
        return self._redis

    # Keys ---------------------------------------------------------------------------

    def client_keys(self, client: str) -> tuple[Key, ...]:
        """rates, open, spend, done: one hash tag per client, so one Cluster slot."""
        return self._keys.keys(f"c:{quote(client, safe='')}", "rates", "open", "spend", "done")

    def client_upstream_keys(self, client: str) -> tuple[Key, ...]:
        """The client's spend per upstream, this day's and this month's: in the
        client's hash tag, so its settle books them in the same script."""
        return self._keys.keys(f"c:{quote(client, safe='')}", "upday", "upmonth")

    def gateway_key(self) -> Key:
        (key,) = self._keys.keys("gateway", "rates")
        return key

    def upstream_keys(self, upstream: str) -> tuple[Key, ...]:
        """rates, spend, done of one upstream: one hash tag, so one Cluster slot."""
        return self._keys.keys(f"u:{quote(upstream, safe='')}", "rates", "spend", "done")

    # The interface --------------------------------------------------------------------

    async def admit(self, admission: Admission) -> Ticket:
        if admission.checks_nothing:  # no round trip; settle books the cost
            return Ticket(new_ticket_id(admission), admission.client, 0, accounted=False)
        started_up = self._health.usable
        if self._health.skip():
            return self._health.uncounted(admission)
        ceiling = tuple(rate for rate in admission.rates if rate.gateway_wide)
        own = tuple(rate for rate in admission.rates if not rate.gateway_wide)
        ticket = new_ticket_id(admission)
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
        except StoreFailure as error:
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

    async def settle(self, ticket: Ticket, cost_micros: int, upstream: str | None = None) -> None:
        if cost_micros < 0:
            raise ValueError("cost_micros must be >= 0")
        if not ticket._settled.claim():
            return
        await self._settle_client(ticket, cost_micros, upstream)
        if upstream is not None and cost_micros > 0:
            await self._book_upstream(ticket, cost_micros, upstream)

    async def _settle_client(self, ticket: Ticket, cost_micros: int, upstream: str | None) -> None:
        if not ticket.accounted and (cost_micros == 0 or not self._health.usable):
            # Let through uncounted: nothing to free. Its cost is still recorded when
            # Redis is back by now; while it is down, nothing is probed for it.
            return
        started_up = self._health.usable
        if self._health.skip():
            return
        keys = list(self.client_keys(ticket.client)[1:])  # open, spend, done
        args: list[str | int] = [ticket.id, cost_micros, round(DONE_RETENTION_S * 1_000_000)]
        if upstream is not None and cost_micros > 0:
            keys += self.client_upstream_keys(ticket.client)
            args += [upstream, MAX_CLIENT_UPSTREAMS]
        try:
            await self._run("settle", keys, args)
        except StoreFailure as error:
            # Its slot and reservation expire on their own (hold_s).
            self._health.down(error)
            return
        self._health.up(started_up)

    async def _book_upstream(self, ticket: Ticket, cost_micros: int, upstream: str) -> None:
        """The upstream's own spend (its keys are in another slot than the client's);
        dropped while Redis cannot be used, like a settle."""

        async def book() -> None:
            _, spend_key, done_key = self.upstream_keys(upstream)
            retention = round(DONE_RETENTION_S * 1_000_000)
            args: list[str | int] = [ticket.id, cost_micros, retention]
            await self._run("upstream_spend", [spend_key, done_key], args)

        await self._health.charge(book, (StoreFailure,), lambda: None)

    async def take_upstream(self, upstream: str, rates: Sequence[RateLimit]) -> float:
        async def take() -> float:
            key = self.upstream_keys(upstream)[0]
            reply = await self._run("ceiling_admit", [key], redis_wire.rate_args(rates))
            return redis_wire.ceiling_wait(reply)

        return await self._health.charge(take, (StoreFailure,), self._health.uncounted_ceiling)

    async def upstream_status(self, upstream: str, rates: Sequence[RateLimit]) -> UpstreamStatus:
        async def read() -> UpstreamStatus:
            keys = list(self.upstream_keys(upstream)[:2])
            reply = await self._run("upstream_status", keys, [rate.name for rate in rates])
            return redis_wire.upstream_status(upstream, rates, reply)

        return await self._health.read("upstreams", read, (StoreFailure,))

    async def client_upstream_spend(self, client: str) -> tuple[UpstreamSpend, ...]:
        async def read() -> tuple[UpstreamSpend, ...]:
            reply = await self._run("client_upstreams", self.client_upstream_keys(client), ())
            return redis_wire.client_upstreams(reply, MAX_CLIENT_UPSTREAMS)

        return await self._health.read("spend", read, (StoreFailure,))

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

        return await self._health.read("status", read, (StoreFailure,))

    async def list_spend(self, limit: int = MAX_SPEND_LISTING) -> SpendListing:
        """SCANs the prefix's ``:open`` and ``:spend`` keys (never KEYS) and reads each
        client's figures with ``status.lua``, pipelined :data:`_PIPELINE` at a time (each
        command in its client's slot), until more than ``limit`` clients qualify; which
        ones are listed then is SCAN's order."""
        return await self._health.read("spend", lambda: self._scan_spend(limit), (StoreFailure,))

    async def _scan_spend(self, limit: int) -> SpendListing:
        found: dict[str, ClientSpend] = {}
        seen: set[str] = set()
        batch: list[str] = []
        async with contextlib.aclosing(self._redis.scan(self._client_pattern())) as keys:
            async for key in keys:
                match = _CLIENT_KEY.fullmatch(key[len(self._keys.prefix) :])
                if match is None or match.group(2) not in ("open", "spend"):
                    continue
                name = unquote(match.group(1))
                if name not in seen:
                    seen.add(name)
                    batch.append(name)
                if len(batch) == _PIPELINE:
                    await self._read_spend(batch, found)
                    batch = []
                    if len(found) > limit:
                        break
        if batch and len(found) <= limit:
            await self._read_spend(batch, found)
        seconds = await self._redis.server_time_s()
        listed = tuple(found[name] for name in sorted(found)[:limit])
        return SpendListing(listed, len(found) > limit, datetime.fromtimestamp(seconds, UTC))

    def _client_pattern(self) -> str:
        # The prefix matched literally (it may hold glob characters), then any client.
        return re.sub(r"([\\*?\[\]])", r"\\\1", self._keys.prefix) + "{c:*}:*"

    async def _read_spend(self, clients: list[str], into: dict[str, ClientSpend]) -> None:
        calls = [(self.client_keys(client)[:3], ()) for client in clients]
        replies = await self._redis.run_many(self._scripts["status"], calls)
        for client, reply in zip(clients, replies, strict=True):
            entry = redis_wire.client_spend(client, reply)
            if entry.spent_this_month_micros or entry.in_flight:
                into[client] = entry

    async def aclose(self) -> None:
        await self._redis.aclose()

    # Internals --------------------------------------------------------------------------

    async def _run(self, name: str, keys: Sequence[Key], args: Sequence[str | int]) -> list[Any]:
        reply: list[Any] = await self._redis.run(self._scripts[name], keys, args)
        return reply

    async def _refund(self, ceiling: Sequence[RateLimit]) -> None:
        try:
            await self._run("ceiling_refund", [self.gateway_key()], redis_wire.refund_args(ceiling))
        except StoreFailure as error:
            # The ceiling stays charged for a call that did not run: conservative.
            self._health.down(error)
