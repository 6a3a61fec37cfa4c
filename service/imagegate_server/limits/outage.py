"""What a limiter with a store (Redis, or the local database) does while the store
cannot be used: per kind of limit, admit uncounted or refuse (:class:`OutagePolicy`),
and say so once when it starts and once when it ends (:class:`StoreHealth`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, runtime_checkable

from imagegate_server.errors import LimiterUnavailable
from imagegate_server.limits.model import Admission, Ticket

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class OutagePolicy:
    """Per kind of limit: while the store is unusable, admit uncounted (open) or refuse."""

    rates_open: bool = True
    concurrency_open: bool = True
    budgets_open: bool = False

    def closed_kinds(self, admission: Admission) -> list[str]:
        kinds = []
        if admission.rates and not self.rates_open:
            kinds.append("rate")
        if admission.max_concurrent is not None and not self.concurrency_open:
            kinds.append("concurrency")
        if admission.budgets and not self.budgets_open:
            kinds.append("budget")
        return kinds

    def describe(self) -> str:
        def word(is_open: bool) -> str:
            return "open" if is_open else "closed"

        return (
            f"rates fail {word(self.rates_open)}, concurrency fails "
            f"{word(self.concurrency_open)}, budgets fail {word(self.budgets_open)}"
        )


StoreState = Literal["up", "refusing", "unreachable"]
RELAPSE_QUIET_S = 30.0
"""A store that fails again for the same reason within this long after it came back
is one flapping outage, not a new one: its lines are not repeated (a Cluster node
down while the others answer makes calls fail and succeed by turns until a replica
takes over, which by default takes 15 s or more)."""


@runtime_checkable
class Explained(Protocol):
    """An error that says what it means for the store (as Redis failures do)."""

    state: Literal["refusing", "unreachable"]
    code: str
    reason: str


class StoreHealth:
    """Whether the store can be used: ``up``, ``unreachable`` (no connection, no answer
    in time) or ``refusing`` (it answers with errors: a wrong password, no permission,
    out of memory, a cluster that is down). One warning naming the reason when an
    outage starts and one line when it ends, never a line per call. While it is down,
    one call per probe interval tries the store and the others do not wait for it."""

    def __init__(
        self,
        backend: str,
        location: str,
        policy: OutagePolicy,
        probe_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.location = location
        """Where the store is, for the log lines (never a password)."""
        self.policy = policy
        self.probe_interval_s = probe_interval_s
        self.state: StoreState = "up"
        self.reason: str | None = None
        """Why it is not up (safe to show an operator), or None."""
        self.outages = 0
        """Outages seen since start (for metrics)."""
        self._probe_at = 0.0
        self._since = 0.0
        self._recovered_at = -RELAPSE_QUIET_S
        self._code = ""
        self._logged = False
        self._also: list[str] = []
        self._clock = clock

    @property
    def usable(self) -> bool:
        return self.state == "up"

    def skip(self) -> bool:
        """True when this call should not try the store (it is down, not probing yet)."""
        if self.usable:
            return False
        now = self._clock()
        if now < self._probe_at:
            return True
        self._probe_at = now + self.probe_interval_s
        return False

    def down(self, error: BaseException) -> None:
        """A command failed with ``error`` (:class:`Explained`, or anything else, which
        counts as unreachable and is named by its type)."""
        if isinstance(error, Explained):
            state, code, reason = error.state, error.code, error.reason
        else:
            state, code, reason = "unreachable", type(error).__name__, type(error).__name__
        now = self._clock()
        self._probe_at = now + self.probe_interval_s
        if self.usable:
            self.outages += 1
            self._since, self._also = now, []
            relapse = code == self._code and now - self._recovered_at < RELAPSE_QUIET_S
            self._code, self._logged = code, not relapse
            if self._logged:
                if state == "unreachable":
                    line = "limits store unreachable (%s from %s); until it answers: %s"
                    what = (reason, self.location)
                else:
                    line = "limits store refusing commands (%s): %s; until it accepts them: %s"
                    what = (self.location, reason)
                log.warning(
                    line,
                    *what,
                    self.policy.describe(),
                    extra={"limiter": self.backend, "error": code, "state": state},
                )
        elif code != self._code and reason not in self._also and len(self._also) < 3:
            self._also.append(reason)
        self.state, self.reason = state, reason

    def up(self, started_up: bool) -> None:
        """The store answered a command sent when ``usable`` was ``started_up``."""
        # Only a command sent while the store counted as down proves it is back: a
        # slow reply to one sent before the outage says nothing about now.
        if self.usable or started_up:
            return
        now = self._clock()
        self.state, self.reason, self._recovered_at = "up", None, now
        if self._logged:
            also = f"; also seen: {'; '.join(self._also)}" if self._also else ""
            log.info(
                "limits store working again (%s, after %.1f s%s)",
                self.location,
                now - self._since,
                also,
                extra={"limiter": self.backend},
            )

    async def read(
        self,
        what: str,
        work: Callable[[], Awaitable[T]],
        errors: tuple[type[BaseException], ...],
    ) -> T:
        """``await work()`` against the store, for a read that has no fallback: raises
        :class:`LimiterUnavailable` naming ``what`` while the store is down (without
        trying it between probes) or when ``work`` raises one of ``errors``."""
        started_up = self.usable
        if self.skip():
            raise self.unavailable(what)
        try:
            result = await work()
        except errors as error:
            self.down(error)
            raise self.unavailable(what) from None
        self.up(started_up)
        return result

    async def charge(
        self,
        work: Callable[[], Awaitable[T]],
        errors: tuple[type[BaseException], ...],
        fallback: Callable[[], T],
    ) -> T:
        """``await work()`` against the store, for a charge that has an outage policy:
        ``fallback()`` while the store is down (without trying it between probes) or
        when ``work`` raises one of ``errors``."""
        started_up = self.usable
        if self.skip():
            return fallback()
        try:
            result = await work()
        except errors as error:
            self.down(error)
            return fallback()
        self.up(started_up)
        return result

    def uncounted(self, admission: Admission) -> Ticket:
        """The ticket of a call let through while the store is down, per the policy;
        raises :class:`LimiterUnavailable` when a kind it needs fails closed."""
        closed = self.policy.closed_kinds(admission)
        if closed:
            raise self.unavailable(" and ".join(closed) + " limits")
        return Ticket(secrets.token_hex(10), admission.client, 0, accounted=False)

    def uncounted_ceiling(self) -> float:
        """An upstream's ceilings while the store is down: let through (0.0, as a
        charge that passed) when rates fail open; else :class:`LimiterUnavailable`."""
        if not self.policy.rates_open:
            raise self.unavailable("upstream ceilings")
        return 0.0

    def unavailable(self, what: str) -> LimiterUnavailable:
        """The caller's error while the store is down (its reason is for the log only)."""
        status = "refusing commands" if self.state == "refusing" else "unreachable"
        return LimiterUnavailable(
            f"the shared limits store is {status}, so {what} cannot be checked; retry shortly"
        )
