"""Value classes of the limiter: what a call must pass, what it holds, what remains.

Everything is an integer where it is counted: units for rates, micro-US-dollars for
money, microseconds inside the algorithms. Values are validated when built, so a
zero or negative cost never reaches a backend (or a Lua script).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Period = Literal["day", "month"]

CONCURRENCY_LIMIT = "concurrent_calls"
"""The limit name (QuotaFailure subject) a refusal for too many concurrent calls carries."""

RESERVATION_PREFIX = "r-"
"""Ticket ids of reservations that hold no concurrency slot (``holds_slot=False``)."""


def new_ticket_id(admission: Admission) -> str:
    """A fresh ticket id for ``admission`` (every backend makes its ids here)."""
    token = secrets.token_hex(10)
    return token if admission.holds_slot else RESERVATION_PREFIX + token


def holds_slot(ticket_id: str) -> bool:
    return not ticket_id.startswith(RESERVATION_PREFIX)


MAX_PER_MINUTE = 1_000_000
"""Highest rate: the emission interval (60 s / rate) is kept in whole microseconds,
rounded up, so at most this rate is off by < 1.7 % (never towards admitting more)."""
MAX_UNITS = 1_000_000
"""Highest burst and cost of one rate limit."""


def _check_name(kind: str, name: str) -> None:
    if not name or len(name) > 200 or not name.isprintable():
        raise ValueError(f"{kind} name must be 1-200 printable characters, got {name[:40]!r}")


@dataclass(frozen=True)
class RateLimit:
    """A GCRA limit: ``per_minute`` units per minute, up to ``burst`` at once.

    The emission interval is T = 60 s / per_minute and the tolerance is burst x T: from
    rest, ``burst`` units pass at once, then one unit per T. A call takes ``cost``
    units (1 for a request, ``n`` for images); a cost above ``burst`` can never pass.
    """

    name: str
    """Stable and user-facing ("images_per_minute"): the QuotaFailure subject, a metric label."""
    per_minute: int
    burst: int
    cost: int
    """Units this call takes (>= 1)."""
    scope: str
    """The client this limit counts for, or "" for the gateway-wide ceiling shared by all."""

    def __post_init__(self) -> None:
        _check_name("rate limit", self.name)
        if not 1 <= self.per_minute <= MAX_PER_MINUTE:
            raise ValueError(f"{self.name}: per_minute must be 1..{MAX_PER_MINUTE}")
        if not 1 <= self.burst <= MAX_UNITS:
            raise ValueError(f"{self.name}: burst must be 1..{MAX_UNITS}")
        if not 1 <= self.cost <= MAX_UNITS:
            raise ValueError(f"{self.name}: cost must be 1..{MAX_UNITS}, got {self.cost}")

    @property
    def emission_us(self) -> int:
        """T in whole microseconds, rounded up (so the limit never admits more than asked)."""
        return -(-60_000_000 // self.per_minute)

    @property
    def tolerance_us(self) -> int:
        return self.burst * self.emission_us

    @property
    def gateway_wide(self) -> bool:
        return self.scope == ""


@dataclass(frozen=True)
class Budget:
    """A spend cap per UTC day or UTC month, in integer micro-US-dollars."""

    name: str
    """User-facing ("daily_budget"): the QuotaFailure subject."""
    period: Period
    limit_micros: int

    def __post_init__(self) -> None:
        _check_name("budget", self.name)
        if self.period not in ("day", "month"):
            raise ValueError(f"{self.name}: period must be 'day' or 'month'")
        if self.limit_micros < 0:
            raise ValueError(f"{self.name}: limit_micros must be >= 0")


@dataclass(frozen=True)
class Admission:
    """Everything one call must pass, checked and charged all-or-nothing."""

    client: str
    rates: tuple[RateLimit, ...] = ()
    """The client's own rates (scope == client) and gateway-wide ones (scope == "")."""
    max_concurrent: int | None = None
    """Calls of this client in flight at once (None: unlimited; 0: none at all)."""
    budgets: tuple[Budget, ...] = ()
    reserve_micros: int = 0
    """The call's estimated cost, held against every budget until it is settled."""
    hold_s: float = 600.0
    """How long the concurrency slot and the reservation live if never settled (a
    replica that died): the upstream timeout plus a margin."""
    holds_slot: bool = True
    """False for a reservation that holds budget only (a queued job's, from its submit
    until it starts): it does not count as a call in flight against ``max_concurrent``.
    Its ticket id starts with :data:`RESERVATION_PREFIX`."""
    replaces: Ticket | None = None
    """A ticket of the same client that this admission takes over: an upload takes
    its concurrency slot when it is authenticated (an admission with only
    ``max_concurrent``) and the rest once its parameters arrive. Admitted, the new
    ticket holds the slot and the replaced one is settled (freed, charged nothing);
    the replaced ticket's slot and reservation do not count against this admission.
    Refused, the replaced ticket keeps its slot: settle it to free it. A replaced
    ticket the store no longer holds (expired, or let through uncounted) replaces
    nothing. A backend that lets the admission through uncounted (an outage) leaves
    the replaced ticket unsettled."""

    def __post_init__(self) -> None:
        _check_name("client", self.client)
        if self.replaces is not None and self.replaces.client != self.client:
            raise ValueError("an admission can only replace a ticket of its own client")
        names = [rate.name for rate in self.rates] + [budget.name for budget in self.budgets]
        if len(set(names)) != len(names) or CONCURRENCY_LIMIT in names:
            raise ValueError(
                f"limit names of one call must be unique and not {CONCURRENCY_LIMIT!r}: {names}"
            )
        for rate in self.rates:
            if rate.scope not in ("", self.client):
                raise ValueError(
                    f"{rate.name}: scope must be the client {self.client!r} or '' (gateway-wide)"
                )
        if self.max_concurrent is not None and self.max_concurrent < 0:
            raise ValueError("max_concurrent must be >= 0 or None")
        if self.reserve_micros < 0:
            raise ValueError("reserve_micros must be >= 0")
        if not 0 < self.hold_s <= 31 * 86400:
            raise ValueError("hold_s must be > 0 and at most 31 days")

    @property
    def hold_us(self) -> int:
        return max(1, round(self.hold_s * 1_000_000))

    @property
    def checks_nothing(self) -> bool:
        """No rate, no concurrency limit, no budget and no ticket to take over: there
        is nothing to check or hold, so no backend needs its store for it (its ticket
        is unaccounted; settling it still books the cost)."""
        return not (self.rates or self.budgets or self.max_concurrent is not None) and (
            self.replaces is None
        )


class _Latch:
    """Set once; tells the first caller. Makes settle idempotent per ticket (no await
    between the test and the set, so it is safe among asyncio tasks)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def claim(self) -> bool:
        first, self._set = not self._set, True
        return first

    @property
    def is_set(self) -> bool:
        return self._set


@dataclass(frozen=True)
class Ticket:
    """What ``admit`` hands out and ``settle`` takes back: one admitted call."""

    id: str
    client: str
    reserved_micros: int
    """What the call holds against the client's budgets until it is settled."""
    accounted: bool
    """False when the store was unreachable and the call was let through uncounted
    (fail-open policy): it holds no slot and no reservation."""
    _settled: _Latch = field(default_factory=_Latch, init=False, repr=False, compare=False)

    @property
    def settled(self) -> bool:
        return self._settled.is_set


@dataclass(frozen=True)
class RateStatus:
    name: str
    scope: str
    per_minute: int
    burst: int
    remaining: int
    """Units a call could take right now."""
    full_in_s: float
    """Seconds until the whole burst is available again (0 when it is)."""


@dataclass(frozen=True)
class BudgetStatus:
    name: str
    period: Period
    limit_micros: int
    spent_micros: int
    """Settled spend in the current period."""
    reserved_micros: int
    """Held by calls in flight (counts against every budget of the client)."""
    remaining_micros: int
    """What a new reservation may take: limit - spent - reserved, never below 0."""
    period_ends_at: datetime
    """Start of the next UTC day or month (timezone-aware, UTC)."""

    @classmethod
    def of(cls, budget: Budget, spent: int, reserved: int, unix_s: float) -> BudgetStatus:
        """The status of ``budget`` at ``unix_s`` (as every limiter reports it)."""
        from imagegate_server.limits.periods import period_end  # periods imports this module

        remaining = max(0, budget.limit_micros - spent - reserved)
        return cls(
            budget.name, budget.period, budget.limit_micros, spent, reserved, remaining,
            period_end(budget.period, unix_s),
        )  # fmt: skip


@dataclass(frozen=True)
class ClientStatus:
    """One client's limits as they stand (read-only, charges nothing)."""

    client: str
    rates: tuple[RateStatus, ...]
    concurrent_in_use: int
    max_concurrent: int | None
    budgets: tuple[BudgetStatus, ...]
    spent_today_micros: int
    """Settled spend in the current UTC day (with or without a budget)."""
    spent_this_month_micros: int
    reserved_micros: int
    """Held by the client's calls in flight."""


@dataclass(frozen=True)
class ClientSpend:
    """One client's spend as the store holds it (for the operator's view of all clients)."""

    client: str
    spent_today_micros: int
    """Settled spend in the current UTC day."""
    spent_this_month_micros: int
    reserved_micros: int
    """Held by the client's calls in flight."""
    in_flight: int
    """Admitted calls not settled yet (whether or not the client has a concurrency limit)."""


MAX_SPEND_LISTING = 10_000
"""At most this many clients in one spend listing (the rest are counted as left out)."""


@dataclass(frozen=True)
class SpendListing:
    """Every client with spend this month or calls in flight, by client name."""

    clients: tuple[ClientSpend, ...]
    truncated: bool
    """More clients than the listing's limit: memory and the local database list the
    first ones by name, Redis the first ones its SCAN met."""
    as_of: datetime
    """The store's time the figures are for (UTC): 'today' is its UTC day."""


@dataclass(frozen=True)
class UpstreamStatus:
    """One upstream's ceilings as they stand and its spend (read-only)."""

    upstream: str
    rates: tuple[RateStatus, ...]
    """Its requests and images per minute ceilings (none when it has none)."""
    spent_today_micros: int
    """Settled spend of calls it answered in the current UTC day."""
    spent_this_month_micros: int


MAX_CLIENT_UPSTREAMS = 256
"""At most this many upstreams in one client's spend per upstream (a file names at most
64; the rest is room for upstreams renamed within a month). Names come from the
operator's upstreams file, never from callers; a reader never lists more than this."""


@dataclass(frozen=True)
class UpstreamSpend:
    """What calls answered by one upstream cost one client (read-only)."""

    upstream: str
    spent_today_micros: int
    """Settled spend in the current UTC day."""
    spent_this_month_micros: int
