"""Per-upstream ceilings and spend, the same way for every backend.

An upstream of the upstreams file may have its own requests and images per minute
ceilings: the limits of the OpenAI organisation (or Azure deployment) behind it, so
the gateway spreads or sheds load before the upstream answers 429. They are GCRA
rates like the gateway-wide ceiling (scope ``""``), one set per upstream, charged
when the router picks the upstream for a call (:meth:`Limiter.take_upstream`), all
or none, shared like every limit: by the workers of one ``serve`` on the local
database, by every replica on Redis. A charge is not given back when the call then
fails on that upstream: a 429 counts at OpenAI too, and a refused connection is
rare enough that keeping it is the conservative error.

Where they live
    memory     a dict per upstream in the process
    local      ``limit_rates`` rows with scope ``upstream:<name>`` (client names
               cannot hold ``:``), and ``limit_upstream_spend`` (schema step 2)
    Redis      ``{u:<name>}:rates`` (the ceilings' TATs, by ``ceiling_admit.lua``)
               and ``{u:<name>}:spend`` (day and month micro-dollars, by
               ``upstream_spend.lua``): one hash tag per upstream, so each script
               touches one Cluster slot. Spend keys expire 33 days after their last
               write, rates once drained.

Spend per upstream is booked when a call is settled with the upstream that answered
it (or last failed, for a failure charged its estimate): in the settle's own
transaction on the local database, as a second script on Redis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from imagegate_server.limits import gcra
from imagegate_server.limits.model import RateLimit, RateStatus

SQLITE_SCOPE = "upstream:"
"""Prefix of an upstream's scope in ``limit_rates`` (client names hold no ``:``)."""


def check(
    rates: Sequence[RateLimit], tats: Mapping[str, int], now_us: int
) -> tuple[float, list[tuple[RateLimit, int]]]:
    """``(0.0, TATs to store)`` when every ceiling passes; else ``(wait_s, [])``: the
    longest wait, or ``math.inf`` when the call's cost exceeds a ceiling's burst."""
    waits: list[int] = []
    charges: list[tuple[RateLimit, int]] = []
    for rate in rates:
        verdict = gcra.check(rate, tats.get(rate.name), now_us)
        if verdict.new_tat_us is not None:
            charges.append((rate, verdict.new_tat_us))
        elif verdict.wait_us is None:
            return math.inf, []
        else:
            waits.append(verdict.wait_us)
    if waits:
        return max(waits) / 1_000_000, []
    return 0.0, charges


def rate_status(
    rates: Sequence[RateLimit], tats: Mapping[str, int | None], now_us: int
) -> tuple[RateStatus, ...]:
    status = []
    for rate in rates:
        units, full_in = gcra.remaining(rate, tats.get(rate.name), now_us)
        status.append(
            RateStatus(rate.name, rate.scope, rate.per_minute, rate.burst, units, full_in)
        )
    return tuple(status)
