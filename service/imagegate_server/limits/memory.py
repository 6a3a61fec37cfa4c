"""The in-process limiter: the default, right for one replica.

Each operation runs without an ``await`` between reading and writing state, so under
asyncio it is atomic by construction: no lock, no partial charge. Rates and expiries
use the monotonic clock; budget periods use UTC wall time. Expired slots and
reservations are swept lazily, per client, when that client calls again.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from imagegate_server.limits import gcra
from imagegate_server.limits.base import Clock, SystemClock
from imagegate_server.limits.model import (
    CONCURRENCY_LIMIT,
    Admission,
    Budget,
    BudgetStatus,
    ClientStatus,
    Period,
    RateLimit,
    RateStatus,
    Ticket,
)
from imagegate_server.limits.periods import (
    period_number,
    seconds_until_period_end,
)
from imagegate_server.limits.refusals import Refusal, to_error, worst

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
        self._next_gc = self._clock.monotonic_us() + _GC_EVERY_US

    @property
    def reachable(self) -> bool:
        return True

    async def admit(self, admission: Admission) -> Ticket:
        now = self._clock.monotonic_us()
        unix = self._clock.unix_s()
        self._collect(now, unix)
        client = self._clients.get(admission.client) or _Client()
        client.sweep(now)

        refusals: list[Refusal] = []
        charges: list[tuple[dict[str, int], str, int]] = []
        for rate in admission.rates:
            tats = self._gateway if rate.gateway_wide else client.rates
            verdict = gcra.check(rate, tats.get(rate.name), now)
            if verdict.new_tat_us is not None:
                charges.append((tats, rate.name, verdict.new_tat_us))
            elif verdict.wait_us is None:
                refusals.append(Refusal(rate.name, "rate", None, permanent=True))
            else:
                refusals.append(Refusal(rate.name, "rate", verdict.wait_us / 1_000_000))
        replaced = admission.replaces
        # The ticket this one takes over (see Admission.replaces) counts for neither.
        held = client.open.get(replaced.id) if replaced is not None else None
        in_use = len(client.open) - (held is not None)
        others_reserved = client.reserved - (held[1] if held is not None else 0)
        if admission.max_concurrent is not None and in_use >= admission.max_concurrent:
            refusals.append(
                Refusal(
                    CONCURRENCY_LIMIT, "concurrency", None, permanent=not admission.max_concurrent
                )
            )
        reserve = admission.reserve_micros
        for budget in admission.budgets:
            spent = client.spend(budget.period).current(period_number(budget.period, unix))
            if reserve > budget.limit_micros:
                refusals.append(Refusal(budget.name, "budget", None, permanent=True))
            elif spent + others_reserved + reserve > budget.limit_micros:
                wait = seconds_until_period_end(budget.period, unix)
                refusals.append(Refusal(budget.name, "budget", wait))
        if refusals:
            raise to_error(admission, worst(refusals))

        for tats, name, tat in charges:
            tats[name] = tat
        if replaced is not None:
            replaced._settled.claim()
            if held is not None:
                del client.open[replaced.id]
                client.reserved -= held[1]
        ticket = Ticket(secrets.token_hex(10), admission.client, reserve, accounted=True)
        expiry = now + admission.hold_us
        client.open[ticket.id] = (expiry, reserve)
        heapq.heappush(client.expiries, (expiry, ticket.id))
        client.reserved += reserve
        self._clients[admission.client] = client
        return ticket

    async def settle(self, ticket: Ticket, cost_micros: int) -> None:
        if cost_micros < 0:
            raise ValueError("cost_micros must be >= 0")
        if not ticket._settled.claim() or not ticket.accounted:
            return
        client = self._clients.setdefault(ticket.client, _Client())
        held = client.open.pop(ticket.id, None)
        if held is not None:
            client.reserved -= held[1]
        if cost_micros:
            # A late settle (after its reservation expired) still counts: the bill is real.
            unix = self._clock.unix_s()
            client.day.add(period_number("day", unix), cost_micros)
            client.month.add(period_number("month", unix), cost_micros)

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
        rate_status = []
        for rate in rates:
            tats = self._gateway if rate.gateway_wide else state.rates
            units, full_in = gcra.remaining(rate, tats.get(rate.name), now)
            rate_status.append(
                RateStatus(rate.name, rate.scope, rate.per_minute, rate.burst, units, full_in)
            )
        budget_status = []
        for budget in budgets:
            spent = state.spend(budget.period).current(period_number(budget.period, unix))
            budget_status.append(BudgetStatus.of(budget, spent, state.reserved, unix))
        return ClientStatus(
            client=client,
            rates=tuple(rate_status),
            concurrent_in_use=len(state.open),
            max_concurrent=max_concurrent,
            budgets=tuple(budget_status),
            spent_today_micros=state.day.current(period_number("day", unix)),
            spent_this_month_micros=state.month.current(period_number("month", unix)),
            reserved_micros=state.reserved,
        )

    async def aclose(self) -> None:
        self._clients.clear()
        self._gateway.clear()

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
