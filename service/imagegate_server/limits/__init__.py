"""Per-client limits and spend: one interface, three backends.

What a call must pass is an :class:`Admission`: its client's rates (requests and
images per minute), the gateway-wide ceiling, concurrent calls, and spend budgets
per UTC day and month; then, per upstream the router picks, that upstream's own
ceilings (:meth:`Limiter.take_upstream`, :mod:`.ceilings`). :meth:`Limiter.admit`
checks and charges all of them, or none, and returns a :class:`Ticket`;
:meth:`Limiter.settle` frees the ticket's slot and reservation and books the call's
real cost; :meth:`Limiter.list_spend` lists
every client's spend for the operator. :func:`build_limiter` picks
:class:`SqliteLimiter` (the default: the local database in ``IMAGEGATE_DATA_DIR``,
shared by the workers of one ``serve`` and kept across restarts),
:class:`RedisLimiter` (``IMAGEGATE_REDIS_URL``, shared by every replica) or
:class:`MemoryLimiter` (``IMAGEGATE_LIMITS_STORE=memory``: one process, forgotten
on restart).

Algorithms
    Rates are GCRA (:mod:`.gcra`): one theoretical arrival time (TAT) per limit,
    emission interval T = 60 s / per_minute in whole microseconds rounded up,
    tolerance = burst x T. A call costs ``cost`` units (``n`` for images); the
    refusal's wait is exact. A cost above the burst never passes (``permanent``,
    no retry time). Concurrency counts the client's admitted, unsettled calls; each
    expires ``hold_s`` after admission, so a replica that died frees its slots.
    Budgets are integer micro-dollars: a call passes when, for every budget,
    spent-this-period + open reservations + its reservation <= limit. Settling adds
    the real cost (above or below the estimate) to the day's and month's spend at
    settle time; reservations expire with the slot.

Slots first (uploads)
    An upload's parameters arrive in its first message, after the caller is known,
    and a caller may never send them. Its concurrency slot is therefore taken when
    it is authenticated (an admission with only ``max_concurrent``), and the rest of
    its admission, once its parameters arrive, names that ticket in
    ``Admission.replaces``: the new ticket takes over the slot atomically (the slot
    is not counted twice, nor checked again against itself) and the old one counts
    as settled. Until then the slot is a call in flight like any other.

Clocks
    Memory: the monotonic clock for rates and expiries, UTC wall time for periods.
    Local database: the wall clock for everything (its state outlives processes).
    Redis: ``redis.call('TIME')`` inside the scripts for everything, so replicas
    with skewed clocks agree; the UTC day and month are computed in Lua from it.

Redis keys (prefix ``IMAGEGATE_REDIS_PREFIX``, default ``imagegate:``)
    Per client, all under one hash tag ``{c:<client, percent-encoded>}`` so one
    script touches one Cluster slot: ``:rates`` (hash: limit name -> TAT us),
    ``:open`` (sorted set: ticket -> expiry us; admitted calls in flight),
    ``:spend`` (hash: ``day``/``day_micros``, ``month``/``month_micros`` for the
    current periods, ``reserved`` total, ``r:<ticket>`` per reservation) and
    ``:done`` (sorted set of recently settled tickets), and with an upstreams file
    ``:upday`` and ``:upmonth`` (hashes: ``period`` number, ``u:<upstream>`` micros:
    the client's spend per upstream, booked by ``settle.lua``; the day's expires two
    days after its last write). The gateway-wide rates are
    the hash ``{gateway}:rates``. Per upstream of the upstreams file, under the hash
    tag ``{u:<name, percent-encoded>}``: ``:rates`` (its own ceilings), ``:spend``
    and ``:done`` (its spend, booked once per ticket): see :mod:`.ceilings`. Every
    key expires when idle (rates: once drained; spend: 33 days after the last write).
    ``admit.lua`` sweeps expired tickets (refunding their reservations) before it
    checks; a replayed admit or settle of the same ticket (redis-py retries once after
    a lost connection) changes nothing.

The two-step ceiling
    The gateway-wide key lives in another slot, so one script cannot hold it with a
    client's keys. ``ceiling_admit.lua`` charges it first; if the client's script
    then refuses, ``ceiling_refund.lua`` gives the cost back (TAT -= cost x T, not
    before now). The error is bounded and only ever conservative: between the two
    steps (one round trip) other replicas see the ceiling charged by a call that
    will not run and may refuse early; a refund lost to an outage or a crash keeps
    at most that call's cost charged until it drains (cost x T). The ceiling never
    admits more than its limit. When the ceiling refuses, the client's limits are
    not consulted, so the refusal names the ceiling even if a client limit would
    also refuse with a longer wait. The memory and local backends have no such gap.

Outages (Redis; the local database alike for its errors: disk full, I/O, a lock
held past the busy timeout)
    Connection errors and timeouts (``IMAGEGATE_REDIS_TIMEOUT_S``) mark Redis
    unreachable: one warning line when that starts, one info line when it answers
    again, never a line per call; :attr:`RedisLimiter.state` shows it.
    Meanwhile one call per second probes it and the others do not wait for it. An
    admission that includes a kind configured to fail closed
    (``IMAGEGATE_REDIS_FAIL_OPEN_*``; by default budgets) raises
    :class:`~imagegate_server.errors.LimiterUnavailable`; otherwise it passes
    uncounted (``Ticket.accounted`` is False: no slot, no reservation; its cost is
    still booked at settle if Redis is back by then). A settle that cannot reach
    Redis is dropped (the slot and reservation expire by themselves) and logged only
    as part of the outage.
"""

from imagegate_server.errors import LimiterUnavailable, LimitRefused
from imagegate_server.limits.base import Limiter
from imagegate_server.limits.factory import build_limiter, uses_local_database
from imagegate_server.limits.memory import MemoryLimiter
from imagegate_server.limits.model import (
    CONCURRENCY_LIMIT,
    MAX_CLIENT_UPSTREAMS,
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    BudgetStatus,
    ClientSpend,
    ClientStatus,
    Period,
    RateLimit,
    RateStatus,
    SpendListing,
    Ticket,
    UpstreamSpend,
    UpstreamStatus,
)
from imagegate_server.limits.outage import OutagePolicy
from imagegate_server.limits.redis_limiter import RedisLimiter
from imagegate_server.limits.sqlite_limiter import SqliteLimiter
from imagegate_server.limits.sqlite_tables import SCHEMA

__all__ = [
    "CONCURRENCY_LIMIT",
    "MAX_CLIENT_UPSTREAMS",
    "MAX_SPEND_LISTING",
    "SCHEMA",
    "Admission",
    "Budget",
    "BudgetStatus",
    "ClientSpend",
    "ClientStatus",
    "LimitRefused",
    "Limiter",
    "LimiterUnavailable",
    "MemoryLimiter",
    "OutagePolicy",
    "Period",
    "RateLimit",
    "RateStatus",
    "RedisLimiter",
    "SpendListing",
    "SqliteLimiter",
    "Ticket",
    "UpstreamSpend",
    "UpstreamStatus",
    "build_limiter",
    "uses_local_database",
]
