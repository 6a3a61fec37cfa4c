"""The in-process limiter: for tests and ``IMAGEGATE_LIMITS_STORE=memory`` (one
process; forgotten on restart).

Each operation runs without an ``await`` between reading and writing state, so under
asyncio it is atomic by construction: no lock, no partial charge. Rates and expiries
use the monotonic clock; budget periods use UTC wall time. Expired slots and
reservations are swept lazily, per client, when that client calls again.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imagegate_server.limits import ceilings
from imagegate_server.limits.base import Clock, SystemClock
from imagegate_server.limits.decision import Standing, client_status, decide
from imagegate_server.limits.model import (
    MAX_CLIENT_UPSTREAMS,
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    ClientSpend,
    ClientStatus,
    Period,
    RateLimit,
    SpendListing,
    Ticket,
    UpstreamSpend,
    UpstreamStatus,
    holds_slot,
    new_ticket_id,
)
from imagegate_server.limits.outage import StoreState
from imagegate_server.limits.periods import period_number

_GC_EVERY_US = 60_000_000


@dataclass
class _Spend:
    period: int = -1
    micros: int = 0

    def current(self, number: int) -> int:
        return self.micros if self.period == number else 0

    def add(self, number: int, micros: int) -> None:
        if self.period != number:
            self.period, self.micros = number, 0
        self.micros += micros


@dataclass
class _Upstream:
    rates: dict[str, int] = field(default_factory=dict)
    """Ceiling name -> TAT (monotonic microseconds)."""
    day: _Spend = field(default_factory=_Spend)
    month: _Spend = field(default_factory=_Spend)


@dataclass
class _Client:
    rates: dict[str, int] = field(default_factory=dict)
    """Rate name -> TAT (monotonic microseconds)."""
    open: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Ticket id -> (expiry, reserved micros): every accounted call in flight."""
    expiries: list[tuple[int, str]] = field(default_factory=list)
    """Heap of (expiry, ticket id); entries of settled tickets are dropped lazily."""
    reserved: int = 0
    day: _Spend = field(default_factory=_Spend)
    month: _Spend = field(default_factory=_Spend)
    upstreams: dict[str, _Upstream] = field(default_factory=dict)
    """Upstream name -> the client's spend on it (its ``rates`` unused); names come
    from the upstreams file, and past months' are dropped when the client books more."""

    def spend(self, period: Period) -> _Spend:
        return self.day if period == "day" else self.month

    def sweep(self, now: int) -> None:
        while self.expiries and self.expiries[0][0] <= now:
            expiry, ticket = heapq.heappop(self.expiries)
            held = self.open.get(ticket)
            if held is not None and held[0] == expiry:
                del self.open[ticket]
                self.reserved -= held[1]
        if len(self.expiries) > 2 * len(self.open) + 64:
            self.expiries = [(expiry, ticket) for ticket, (expiry, _) in self.open.items()]
            heapq.heapify(self.expiries)

    def idle(self, now: int, month: int) -> bool:
        return (
            not self.open
            and all(tat <= now for tat in self.rates.values())
            and self.month.current(month) == 0
        )


class MemoryLimiter:
    """:class:`~imagegate_server.limits.Limiter` in this process's memory."""

    backend = "memory"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._clients: dict[str, _Client] = {}
        self._gateway: dict[str, int] = {}
        self._upstreams: dict[str, _Upstream] = {}
        self._next_gc = self._clock.monotonic_us() + _GC_EVERY_US

    @property
    def state(self) -> StoreState:
        return "up"

    async def admit(self, admission: Admission) -> Ticket:
        now = self._clock.monotonic_us()
        unix = self._clock.unix_s()
        self._collect(now, unix)
        client = self._clients.get(admission.client) or _Client()
        client.sweep(now)
        standing = self._standing(client, admission.rates, unix)
        replaced = admission.replaces
        held = client.open.get(replaced.id) if replaced is not None else None
        if held is not None:
            standing = standing.without_call(held[1])  # the ticket this one takes over
        charges = decide(admission, standing, now, unix)
        for rate, tat in charges:
            (self._gateway if rate.gateway_wide else client.rates)[rate.name] = tat
        if replaced is not None:
            replaced._settled.claim()
            if held is not None:
                del client.open[replaced.id]
                client.reserved -= held[1]
        reserve = admission.reserve_micros
        ticket = Ticket(new_ticket_id(admission), admission.client, reserve, accounted=True)
        expiry = now + admission.hold_us
        client.open[ticket.id] = (expiry, reserve)
        heapq.heappush(client.expiries, (expiry, ticket.id))
        client.reserved += reserve
        self._clients[admission.client] = client
        return ticket

    async def settle(self, ticket: Ticket, cost_micros: int, upstream: str | None = None) -> None:
        if cost_micros < 0:
            raise ValueError("cost_micros must be >= 0")
        if not ticket._settled.claim():
            return
        unix = self._clock.unix_s()
        if cost_micros and upstream is not None:
            spend = self._upstreams.setdefault(upstream, _Upstream())
            spend.day.add(period_number("day", unix), cost_micros)
            spend.month.add(period_number("month", unix), cost_micros)
        if not ticket.accounted:
            return
        client = self._clients.setdefault(ticket.client, _Client())
        held = client.open.pop(ticket.id, None)
        if held is not None:
            client.reserved -= held[1]
        if cost_micros:
            # A late settle (after its reservation expired) still counts: the bill is real.
            day, month = period_number("day", unix), period_number("month", unix)
            client.day.add(day, cost_micros)
            client.month.add(month, cost_micros)
            if upstream is not None:
                _book(client.upstreams, upstream, day, month, cost_micros)

    async def take_upstream(self, upstream: str, rates: Sequence[RateLimit]) -> float:
        state = self._upstreams.setdefault(upstream, _Upstream())
        wait, charges = ceilings.check(rates, state.rates, self._clock.monotonic_us())
        for rate, tat in charges:
            state.rates[rate.name] = tat
        return wait

    async def upstream_status(self, upstream: str, rates: Sequence[RateLimit]) -> UpstreamStatus:
        state = self._upstreams.get(upstream) or _Upstream()
        unix = self._clock.unix_s()
        return UpstreamStatus(
            upstream,
            ceilings.rate_status(rates, state.rates, self._clock.monotonic_us()),
            state.day.current(period_number("day", unix)),
            state.month.current(period_number("month", unix)),
        )

    async def client_upstream_spend(self, client: str) -> tuple[UpstreamSpend, ...]:
        state = self._clients.get(client)
        if state is None:
            return ()
        unix = self._clock.unix_s()
        day, month = period_number("day", unix), period_number("month", unix)
        spends = [
            UpstreamSpend(name, spend.day.current(day), spend.month.current(month))
            for name, spend in sorted(state.upstreams.items())
            if spend.month.current(month)
        ]
        return tuple(spends[:MAX_CLIENT_UPSTREAMS])

    async def status(
        self,
        client: str,
        rates: Sequence[RateLimit],
        max_concurrent: int | None,
        budgets: Sequence[Budget],
    ) -> ClientStatus:
        now = self._clock.monotonic_us()
        unix = self._clock.unix_s()
        state = self._clients.get(client) or _Client()
        state.sweep(now)
        standing = self._standing(state, rates, unix)
        return client_status(client, rates, max_concurrent, budgets, standing, now, unix)

    async def list_spend(self, limit: int = MAX_SPEND_LISTING) -> SpendListing:
        now = self._clock.monotonic_us()
        unix = self._clock.unix_s()
        day, month = period_number("day", unix), period_number("month", unix)
        listed = []
        for name in sorted(self._clients):
            state = self._clients[name]
            state.sweep(now)
            entry = ClientSpend(
                name, state.day.current(day), state.month.current(month), state.reserved,
                len(state.open),
            )  # fmt: skip
            if entry.spent_this_month_micros or entry.in_flight:
                listed.append(entry)
        return SpendListing(tuple(listed[:limit]), len(listed) > limit, _utc(unix))

    def _standing(self, client: _Client, rates: Sequence[RateLimit], unix: float) -> Standing:
        tats = {}
        for rate in rates:
            tat = (self._gateway if rate.gateway_wide else client.rates).get(rate.name)
            if tat is not None:
                tats[rate.name] = tat
        return Standing(
            tats,
            in_use=sum(holds_slot(ticket) for ticket in client.open),
            spent_day=client.day.current(period_number("day", unix)),
            spent_month=client.month.current(period_number("month", unix)),
            reserved=client.reserved,
        )

    async def aclose(self) -> None:
        self._clients.clear()
        self._gateway.clear()
        self._upstreams.clear()

    def _collect(self, now: int, unix: float) -> None:
        """Forget clients with nothing left to remember (at most once a minute)."""
        if now < self._next_gc:
            return
        self._next_gc = now + _GC_EVERY_US
        month = period_number("month", unix)
        for name, client in list(self._clients.items()):
            client.sweep(now)
            if client.idle(now, month):
                del self._clients[name]
        for name, tat in list(self._gateway.items()):
            if tat <= now:
                del self._gateway[name]


def _book(spends: dict[str, _Upstream], upstream: str, day: int, month: int, cost: int) -> None:
    """Add ``cost`` to the client's spend on ``upstream``, forgetting upstreams that
    cost it nothing this month first (upstreams renamed or removed from the file)."""
    if upstream not in spends and len(spends) >= MAX_CLIENT_UPSTREAMS:
        for name in [name for name, spend in spends.items() if not spend.month.current(month)]:
            del spends[name]
        if len(spends) >= MAX_CLIENT_UPSTREAMS:
            return  # more upstreams this month than a file can name: the client total has it
    spend = spends.setdefault(upstream, _Upstream())
    spend.day.add(day, cost)
    spend.month.add(month, cost)


def _utc(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
