"""The Redis scripts' calling convention: their ``ARGV`` packed from an
:class:`Admission`, and their replies read back into refusals and a
:class:`ClientStatus`. The layouts are documented at the top of each script in
``scripts/``; this is the only Python that knows them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from imagegate_server.errors import LimitRefused
from imagegate_server.limits import ceilings, gcra
from imagegate_server.limits.model import (
    CONCURRENCY_LIMIT,
    Admission,
    Budget,
    BudgetStatus,
    ClientSpend,
    ClientStatus,
    RateLimit,
    RateStatus,
    UpstreamSpend,
    UpstreamStatus,
)
from imagegate_server.limits.periods import (
    period_number,
    seconds_until_period_end,
)
from imagegate_server.limits.refusals import Refusal, to_error, worst


def rate_args(rates: Sequence[RateLimit]) -> list[str | int]:
    args: list[str | int] = [len(rates)]
    for rate in rates:
        args += [rate.name, rate.emission_us, rate.tolerance_us, rate.cost]
    return args


def admit_args(ticket: str, admission: Admission, own: Sequence[RateLimit]) -> list[str | int]:
    """``admit.lua``'s ARGV: the client's own rates (not the gateway-wide ones)."""
    args: list[str | int] = [
        ticket,
        admission.hold_us,
        admission.reserve_micros,
        -1 if admission.max_concurrent is None else admission.max_concurrent,
        "" if admission.replaces is None else admission.replaces.id,
        *rate_args(own),
        len(admission.budgets),
    ]
    for budget in admission.budgets:
        args += [budget.name, budget.period, budget.limit_micros]
    return args


def refund_args(ceiling: Sequence[RateLimit]) -> list[str | int]:
    """``ceiling_refund.lua``'s ARGV."""
    args: list[str | int] = [len(ceiling)]
    for rate in ceiling:
        args += [rate.name, rate.emission_us, rate.cost]
    return args


def refused(admission: Admission, reply: list[Any]) -> LimitRefused:
    """The error for a refusing reply of ``admit.lua`` or ``ceiling_admit.lua``."""
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


def client_status(
    client: str,
    rates: Sequence[RateLimit],
    max_concurrent: int | None,
    budgets: Sequence[Budget],
    reply: list[Any],
    peek: list[Any],
) -> ClientStatus:
    """``status.lua``'s reply for the client's own rates and ``peek_rates.lua``'s for
    the gateway-wide ones (or ``[now]`` when there are none), read together."""
    own = [rate for rate in rates if not rate.gateway_wide]
    ceiling = [rate for rate in rates if rate.gateway_wide]
    now_us, in_use = int(reply[0]), int(reply[1])
    day, day_micros, month, month_micros, reserved_total = (_int(v) for v in reply[2:7])
    reserved = max(0, (reserved_total or 0) - int(reply[7]))
    tats = dict(zip((r.name for r in own), (_int(v) for v in reply[8:]), strict=True))
    ceiling_now = int(peek[0])
    ceiling_tats = dict(zip((r.name for r in ceiling), (_int(v) for v in peek[1:]), strict=True))
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
        budget_status.append(BudgetStatus.of(budget, spent, reserved, unix))
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


def client_spend(client: str, reply: list[Any]) -> ClientSpend:
    """``status.lua``'s reply (asked for no rates) as the client's spend listing entry."""
    now_us, in_use = int(reply[0]), int(reply[1])
    day, day_micros, month, month_micros, reserved_total = (_int(v) for v in reply[2:7])
    unix = now_us / 1_000_000
    return ClientSpend(
        client,
        (day_micros or 0) if day == period_number("day", unix) else 0,
        (month_micros or 0) if month == period_number("month", unix) else 0,
        max(0, (reserved_total or 0) - int(reply[7])),
        in_use,
    )


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def ceiling_wait(reply: list[Any]) -> float:
    """``ceiling_admit.lua``'s reply for one upstream's ceilings: 0.0 when charged,
    else the longest wait in seconds (``math.inf`` for a cost above a burst)."""
    if int(reply[0]) == 1:
        return 0.0
    waits = [0.0]
    for i in range(2, len(reply), 3):
        if reply[i] == "never":
            return math.inf
        waits.append(int(reply[i + 2]) / 1_000_000)
    return max(waits)


def upstream_status(upstream: str, rates: Sequence[RateLimit], reply: list[Any]) -> UpstreamStatus:
    """``upstream_status.lua``'s reply."""
    now_us = int(reply[0])
    tats = dict(zip((r.name for r in rates), (_int(v) for v in reply[3:]), strict=True))
    return UpstreamStatus(
        upstream, ceilings.rate_status(rates, tats, now_us), int(reply[1]), int(reply[2])
    )


def client_upstreams(reply: list[Any], most: int) -> tuple[UpstreamSpend, ...]:
    """``client_upstreams.lua``'s reply: upstreams with spend this month, by name."""
    today = _upstream_fields(reply[0])
    month = _upstream_fields(reply[1])
    names = sorted(name for name, micros in month.items() if micros > 0)[:most]
    return tuple(UpstreamSpend(name, today.get(name, 0), month[name]) for name in names)


def _upstream_fields(flat: list[Any]) -> dict[str, int]:
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return {_text(field)[2:]: int(value) for field, value in pairs if _text(field).startswith("u:")}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
