"""Deciding an admission, and reporting a status, from what a backend has read.

The memory and SQLite backends keep the same state in different places; both read
a client's :class:`Standing`, let :func:`decide` judge the call (GCRA per rate, the
concurrency slot, every budget, all or nothing) and store the TATs it returns. The
Redis backend runs the same rules in Lua (``scripts/``); the shared test suite
holds all three to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from imagegate_server.limits import gcra
from imagegate_server.limits.model import (
    CONCURRENCY_LIMIT,
    Admission,
    Budget,
    BudgetStatus,
    ClientStatus,
    RateLimit,
    RateStatus,
)
from imagegate_server.limits.periods import seconds_until_period_end
from imagegate_server.limits.refusals import Refusal, to_error, worst


@dataclass(frozen=True)
class Standing:
    """One client's state as a backend read it (expired calls already left out)."""

    tats: Mapping[str, int]
    """Rate name -> TAT in microseconds, for the rates asked about (absent: at rest).
    Names are unique within one admission, the gateway-wide ones included."""
    in_use: int = 0
    """Admitted, unsettled, unexpired calls of the client."""
    spent_day: int = 0
    """Settled spend in the current UTC day (micro-dollars)."""
    spent_month: int = 0
    reserved: int = 0
    """Held by the client's calls in flight."""

    def spent(self, budget: Budget) -> int:
        return self.spent_day if budget.period == "day" else self.spent_month

    def without_call(self, reserved: int) -> Standing:
        """The standing without one held call: the ticket an admission takes over
        (``Admission.replaces``) counts for neither its slot nor its reservation."""
        return replace(self, in_use=self.in_use - 1, reserved=self.reserved - reserved)


def decide(
    admission: Admission, standing: Standing, now_us: int, unix_s: float
) -> list[tuple[RateLimit, int]]:
    """The TATs to store when every limit passes.

    Raises :class:`~imagegate_server.errors.LimitRefused` naming the worst refusal
    (see :func:`.refusals.worst`) when any limit refuses; then nothing is charged.
    """
    refusals: list[Refusal] = []
    charges: list[tuple[RateLimit, int]] = []
    for rate in admission.rates:
        verdict = gcra.check(rate, standing.tats.get(rate.name), now_us)
        if verdict.new_tat_us is not None:
            charges.append((rate, verdict.new_tat_us))
        elif verdict.wait_us is None:
            refusals.append(Refusal(rate.name, "rate", None, permanent=True))
        else:
            refusals.append(Refusal(rate.name, "rate", verdict.wait_us / 1_000_000))
    limit = admission.max_concurrent
    if limit is not None and standing.in_use >= limit:
        refusals.append(Refusal(CONCURRENCY_LIMIT, "concurrency", None, permanent=not limit))
    reserve = admission.reserve_micros
    for budget in admission.budgets:
        if reserve > budget.limit_micros:
            refusals.append(Refusal(budget.name, "budget", None, permanent=True))
        elif standing.spent(budget) + standing.reserved + reserve > budget.limit_micros:
            wait = seconds_until_period_end(budget.period, unix_s)
            refusals.append(Refusal(budget.name, "budget", wait))
    if refusals:
        raise to_error(admission, worst(refusals))
    return charges


def client_status(
    client: str,
    rates: Sequence[RateLimit],
    max_concurrent: int | None,
    budgets: Sequence[Budget],
    standing: Standing,
    now_us: int,
    unix_s: float,
) -> ClientStatus:
    """What remains of the client's limits, as :meth:`Limiter.status` reports it."""
    rate_status = []
    for rate in rates:
        units, full_in = gcra.remaining(rate, standing.tats.get(rate.name), now_us)
        rate_status.append(
            RateStatus(rate.name, rate.scope, rate.per_minute, rate.burst, units, full_in)
        )
    return ClientStatus(
        client=client,
        rates=tuple(rate_status),
        concurrent_in_use=standing.in_use,
        max_concurrent=max_concurrent,
        budgets=tuple(
            BudgetStatus.of(b, standing.spent(b), standing.reserved, unix_s) for b in budgets
        ),
        spent_today_micros=standing.spent_day,
        spent_this_month_micros=standing.spent_month,
        reserved_micros=standing.reserved,
    )
