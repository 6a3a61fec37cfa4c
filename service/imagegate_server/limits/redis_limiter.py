"""The Redis limiter: limits and spend shared by every replica that uses the same Redis.

One round trip admits a call: ``admit.lua`` checks and charges all of one client's
limits at once. Gateway-wide rates live under their own key and are charged first by
``ceiling_admit.lua`` (see the package docstring for that two-step trade-off).
While Redis cannot be reached, :class:`OutagePolicy` decides per kind of limit.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from imagegate_server.errors import LimiterUnavailable, LimitRefused
from imagegate_server.limits import gcra, lua
from imagegate_server.limits.base import DONE_RETENTION_S
from imagegate_server.limits.model import (
    CONCURRENCY_LIMIT,
    Admission,
    Budget,
    BudgetStatus,
    ClientStatus,
    RateLimit,
    RateStatus,
    Ticket,
)
from imagegate_server.limits.periods import (
    period_end,
    period_number,
    seconds_until_period_end,
)
from imagegate_server.limits.refusals import Refusal, to_error, worst

log = logging.getLogger(__name__)

# What "Redis is unreachable" looks like from redis-py: its own errors (connection,
# timeout, loading, auth, read-only replica, OOM), plus the OS's and asyncio's.
_STORE_ERRORS = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class OutagePolicy:
    """Per kind of limit: while Redis is unreachable, admit uncounted (open) or refuse."""

    rates_open: bool = True
    concurrency_open: bool = True
    budgets_open: bool = False

    def closed_kinds(self, admission: Admission) -> list[str]:
        kinds = []
        if admission.rates and not self.rates_open:
            kinds.append("rate")
        if admission.max_concurrent is not None and not self.concurrency_open:
            kinds.append("concurrency")
        if admission.budgets and not self.budgets_open:
            kinds.append("budget")
        return kinds

    def describe(self) -> str:
        def word(is_open: bool) -> str:
            return "open" if is_open else "closed"

        return (
            f"rates fail {word(self.rates_open)}, concurrency fails "
            f"{word(self.concurrency_open)}, budgets fail {word(self.budgets_open)}"
        )


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


def _rate_args(rates: Sequence[RateLimit]) -> list[str | int]:
    args: list[str | int] = [len(rates)]
    for rate in rates:
        args += [rate.name, rate.emission_us, rate.tolerance_us, rate.cost]
    return args


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


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
        args: list[str | int] = [
            ticket,
            admission.hold_us,
            admission.reserve_micros,
            -1 if admission.max_concurrent is None else admission.max_concurrent,
            *_rate_args(own),
            len(admission.budgets),
        ]
        for budget in admission.budgets:
            args += [budget.name, budget.period, budget.limit_micros]
        try:
            if ceiling:
                reply = await self._run("ceiling_admit", [self.gateway_key()], _rate_args(ceiling))
                if reply[0] == 0:
                    self._up(started_up)
                    raise self._refused(admission, reply)
            reply = await self._run("admit", list(self.client_keys(admission.client)), args)
        except _STORE_ERRORS as error:
            self._down(error)
            return self._uncounted(admission)
        self._up(started_up)
        if reply[0] == 0:
            if ceiling:
                await self._refund(ceiling)
            raise self._refused(admission, reply)
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

        now_us, in_use = int(reply[0]), int(reply[1])
        day, day_micros, month, month_micros, reserved_total = (_int(v) for v in reply[2:7])
        reserved = max(0, (reserved_total or 0) - int(reply[7]))
        tats = dict(zip((r.name for r in own), (_int(v) for v in reply[8:]), strict=True))
        ceiling_now = int(peek[0])
        ceiling_tats = dict(
            zip((r.name for r in ceiling), (_int(v) for v in peek[1:]), strict=True)
        )
        unix = now_us / 1_000_000
        spent_today = (day_micros or 0) if day == period_number("day", unix) else 0
        spent_month = (month_micros or 0) if month == period_number("month", unix) else 0

        rate_status = []
        for rate in rates:
            if rate.gateway_wide:
                units, full_in = gcra.remaining(rate, ceiling_tats[rate.name], ceiling_now)
            else:
                units, full_in = gcra.remaining(rate, tats[rate.name], now_us)
            rate_status.append(
                RateStatus(rate.name, rate.scope, rate.per_minute, rate.burst, units, full_in)
            )
        budget_status = []
        for budget in budgets:
            spent = spent_today if budget.period == "day" else spent_month
            budget_status.append(
                BudgetStatus(
                    budget.name,
                    budget.period,
                    budget.limit_micros,
                    spent,
                    reserved,
                    max(0, budget.limit_micros - spent - reserved),
                    period_end(budget.period, unix),
                )
            )
        return ClientStatus(
            client=client,
            rates=tuple(rate_status),
            concurrent_in_use=in_use,
            max_concurrent=max_concurrent,
            budgets=tuple(budget_status),
            spent_today_micros=spent_today,
            spent_this_month_micros=spent_month,
            reserved_micros=reserved,
        )

    async def aclose(self) -> None:
        await self._redis.aclose(close_connection_pool=True)

    # Internals --------------------------------------------------------------------------

    async def _run(self, name: str, keys: list[str], args: Sequence[str | int]) -> list[Any]:
        # EVALSHA; redis-py loads the script and retries when Redis answers NOSCRIPT
        # (a restarted or failed-over Redis has an empty script cache).
        reply: list[Any] = await self._scripts[name](keys=keys, args=args)
        return reply

    async def _refund(self, ceiling: Sequence[RateLimit]) -> None:
        args: list[str | int] = [len(ceiling)]
        for rate in ceiling:
            args += [rate.name, rate.emission_us, rate.cost]
        try:
            await self._run("ceiling_refund", [self.gateway_key()], args)
        except _STORE_ERRORS as error:
            # The ceiling stays charged for a call that did not run: conservative.
            self._down(error)

    def _refused(self, admission: Admission, reply: list[Any]) -> LimitRefused:
        unix = int(reply[1]) / 1_000_000
        periods = {budget.name: budget.period for budget in admission.budgets}
        refusals = []
        for i in range(2, len(reply), 3):
            kind, name, wait = reply[i], reply[i + 1], int(reply[i + 2])
            if kind == "rate":
                refusals.append(Refusal(name, "rate", wait / 1_000_000))
            elif kind == "never":
                refusals.append(Refusal(name, "rate", None, permanent=True))
            elif kind == "concurrency":
                refusals.append(Refusal(CONCURRENCY_LIMIT, "concurrency", None))
            elif kind == "concurrency_never":
                refusals.append(Refusal(CONCURRENCY_LIMIT, "concurrency", None, permanent=True))
            elif kind == "budget":
                wait_s = seconds_until_period_end(periods[name], unix)
                refusals.append(Refusal(name, "budget", wait_s))
            else:
                refusals.append(Refusal(name, "budget", None, permanent=True))
        return to_error(admission, worst(refusals))

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
