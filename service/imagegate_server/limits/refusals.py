"""Turning what refused into one :class:`LimitRefused`, the same way for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from imagegate_server.errors import LimitRefused
from imagegate_server.limits.model import CONCURRENCY_LIMIT, Admission
from imagegate_server.pricing.money import format_usd

Kind = Literal["rate", "concurrency", "budget"]


@dataclass(frozen=True)
class Refusal:
    limit: str
    kind: Kind
    wait_s: float | None
    """Seconds until it frees; None: unknown (concurrency) or never (``permanent``)."""
    permanent: bool = False


def _rank(refusal: Refusal) -> tuple[int, float]:
    # A limit the call can never pass beats any wait; then the longest known wait
    # (retrying sooner would only be refused again); an unknown wait comes last.
    if refusal.permanent:
        return (2, 0.0)
    if refusal.wait_s is None:
        return (0, 0.0)
    return (1, refusal.wait_s)


def worst(refusals: list[Refusal]) -> Refusal:
    """The refusal to report when several limits refuse (the first of equals)."""
    best = refusals[0]
    for refusal in refusals[1:]:
        if _rank(refusal) > _rank(best):
            best = refusal
    return best


def _seconds(wait: float) -> str:
    return f"{wait:.1f} s" if wait >= 1 else f"{wait:.3f} s"


def to_error(admission: Admission, refusal: Refusal) -> LimitRefused:
    """The caller-facing error: which limit, its value, when to retry (no secrets)."""
    who = f"for client {admission.client[:100]!r}"
    when = (
        ""
        if refusal.wait_s is None or refusal.permanent
        else f"; retry in {_seconds(refusal.wait_s)}"
    )
    if refusal.kind == "rate":
        rate = next(r for r in admission.rates if r.name == refusal.limit)
        if rate.gateway_wide:
            who = "for the whole gateway (all clients)"
        text = f"{rate.name}: {rate.per_minute} per minute (burst {rate.burst}) {who}"
        if refusal.permanent:
            text += f"; this call needs {rate.cost}, more than the burst, so it can never pass"
    elif refusal.kind == "concurrency":
        limit = admission.max_concurrent
        text = f"{CONCURRENCY_LIMIT}: {limit} at once {who}"
        text += " (suspended)" if refusal.permanent else "; retry when one of its calls ends"
    else:
        budget = next(b for b in admission.budgets if b.name == refusal.limit)
        reserve = format_usd(admission.reserve_micros)
        text = f"{budget.name}: {format_usd(budget.limit_micros)} per UTC {budget.period} {who}"
        if refusal.permanent:
            text += f"; this call reserves {reserve}, more than the whole budget"
        else:
            text += f"; this call reserves {reserve}"
    return LimitRefused(
        refusal.limit,
        text + when,
        client=admission.client,
        retry_after_s=None if refusal.permanent else refusal.wait_s,
        permanent=refusal.permanent,
        gateway_wide=refusal.kind == "rate" and rate.gateway_wide,
    )
