"""The one interface every limiter backend offers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from imagegate_server.limits.model import (
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    ClientStatus,
    RateLimit,
    SpendListing,
    Ticket,
    UpstreamSpend,
    UpstreamStatus,
)
from imagegate_server.limits.outage import StoreState

DONE_RETENTION_S = 10.0
"""How long Redis remembers a settled ticket, so a command that redis-py retries after
a lost reply (within one timeout) is not applied twice. Within a process the ticket
itself knows it was settled, however late a second settle comes."""


class Limiter(Protocol):
    backend: str
    """"local", "memory" or "redis" (for logs and metrics)."""

    @property
    def state(self) -> StoreState:
        """``up``; ``unreachable`` while the store cannot be reached (no connection, no
        answer in time); ``refusing`` while it answers with errors (a wrong password,
        no permission, out of memory, a Cluster that is down). Always ``up`` in memory."""
        ...

    async def admit(self, admission: Admission) -> Ticket:
        """Check and charge every limit of the call, all or nothing.

        Raises :class:`~imagegate_server.errors.LimitRefused` naming the refusing limit
        (the one with the longest wait when several refuse), or
        :class:`~imagegate_server.errors.LimiterUnavailable` when the store is down and
        a kind this call needs fails closed.

        An admission with no limit at all may pass without being recorded
        (``accounted`` False, as the local store does to save a transaction); its
        cost is still booked when it is settled.
        """
        ...

    async def settle(self, ticket: Ticket, cost_micros: int, upstream: str | None = None) -> None:
        """Free the call's slot and reservation and add its real cost to today's and
        this month's spend (0 = release), and to ``upstream``'s when given (the
        upstream that answered the call), both the upstream's own and the client's
        spend on it. Idempotent; never raises for store outages."""
        ...

    async def client_upstream_spend(self, client: str) -> tuple[UpstreamSpend, ...]:
        """``client``'s settled spend per upstream this UTC day and month (upstreams
        with spend this month, by name, at most
        :data:`~imagegate_server.limits.model.MAX_CLIENT_UPSTREAMS`); charges nothing.
        Raises :class:`~imagegate_server.errors.LimiterUnavailable` when the store
        cannot be read."""
        ...

    async def take_upstream(self, upstream: str, rates: Sequence[RateLimit]) -> float:
        """Charge one call to ``upstream``'s ceilings (gateway-wide rates, scope
        ``""``), all or none (:mod:`.ceilings`). Returns 0.0 when charged (or let
        through uncounted while the store is down and rates fail open), else the
        seconds until they would pass (``math.inf``: never, for this call's cost).
        Raises :class:`~imagegate_server.errors.LimiterUnavailable` while the store is
        down and rates fail closed."""
        ...

    async def upstream_status(self, upstream: str, rates: Sequence[RateLimit]) -> UpstreamStatus:
        """``upstream``'s ceilings as they stand and its spend; charges nothing.
        Raises :class:`~imagegate_server.errors.LimiterUnavailable` when the store
        cannot be read."""
        ...

    async def status(
        self,
        client: str,
        rates: Sequence[RateLimit],
        max_concurrent: int | None,
        budgets: Sequence[Budget],
    ) -> ClientStatus:
        """What remains of the client's limits now; charges nothing."""
        ...

    async def list_spend(self, limit: int = MAX_SPEND_LISTING) -> SpendListing:
        """Every client with settled spend this UTC month or calls in flight, by name,
        at most ``limit`` of them. Raises
        :class:`~imagegate_server.errors.LimiterUnavailable` when the store cannot be read."""
        ...

    async def aclose(self) -> None: ...


class Clock(Protocol):
    """Where a backend in this process reads time (the tests drive it by hand)."""

    def monotonic_us(self) -> int:
        """For rates and expiries: never jumps."""
        ...

    def unix_s(self) -> float:
        """UTC wall time, for budget periods."""
        ...


class SystemClock:
    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    def unix_s(self) -> float:
        return time.time()
