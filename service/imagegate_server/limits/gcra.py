"""GCRA (generic cell rate algorithm) on integer microseconds.

State per limit is one number, the theoretical arrival time (TAT). A call of cost c
passes iff ``max(TAT, now) + c*T - tolerance <= now``; it then sets TAT to
``max(TAT, now) + c*T``. When it does not pass, the difference is exactly how long it
must wait. The memory backend runs this code; ``scripts/common.lua`` is the same
algorithm for Redis (the shared test suite holds them to the same behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegate_server.limits.model import RateLimit


@dataclass(frozen=True)
class Verdict:
    new_tat_us: int | None
    """The TAT to store if every limit of the call passes; None when this one refuses."""
    wait_us: int | None
    """How long until it would pass; None when it never can (cost above burst)."""


def check(rate: RateLimit, tat_us: int | None, now_us: int) -> Verdict:
    if rate.cost > rate.burst:
        return Verdict(None, None)
    start = now_us if tat_us is None else max(tat_us, now_us)
    new_tat = start + rate.cost * rate.emission_us
    wait = new_tat - rate.tolerance_us - now_us
    if wait > 0:
        return Verdict(None, wait)
    return Verdict(new_tat, 0)


def remaining(rate: RateLimit, tat_us: int | None, now_us: int) -> tuple[int, float]:
    """Units a call could take now, and seconds until the whole burst is back."""
    backlog = 0 if tat_us is None else max(0, tat_us - now_us)
    units = max(0, (rate.tolerance_us - backlog) // rate.emission_us)
    return min(units, rate.burst), backlog / 1_000_000
