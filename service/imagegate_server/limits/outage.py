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
from typing import TypeVar

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


class StoreHealth:
    """Whether the store answers: one warning when an outage starts, one info line when
    it ends, never a line per call. While it is down, one call per probe interval
    tries the store and the others do not wait for it."""

    def __init__(
        self, backend: str, location: str, policy: OutagePolicy, probe_interval_s: float = 1.0
    ) -> None:
        self.backend = backend
        self.location = location
        """Where the store is, for the log lines (never a password)."""
        self.policy = policy
        self.probe_interval_s = probe_interval_s
        self.reachable = True
        self.outages = 0
        """Outages seen since start (for metrics)."""
        self._probe_at = 0.0

    def skip(self) -> bool:
        """True when this call should not try the store (it is down, not probing yet)."""
        if self.reachable:
            return False
        now = time.monotonic()
        if now < self._probe_at:
            return True
        self._probe_at = now + self.probe_interval_s
        return False

    def down(self, error: BaseException) -> None:
        self._probe_at = time.monotonic() + self.probe_interval_s
        if self.reachable:
            self.reachable = False
            self.outages += 1
            log.warning(
                "limits store unreachable (%s from %s); until it answers: %s",
                type(error).__name__,
                self.location,
                self.policy.describe(),
                extra={"limiter": self.backend, "error": type(error).__name__},
            )

    def up(self, started_up: bool) -> None:
        """The store answered a command sent when ``reachable`` was ``started_up``."""
        # Only a command sent while the store counted as down proves it is back: a
        # slow reply to one sent before the outage says nothing about now.
        if not self.reachable and not started_up:
            self.reachable = True
            log.info(
                "limits store reachable again (%s)", self.location, extra={"limiter": self.backend}
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
        started_up = self.reachable
        if self.skip():
            raise unavailable(what)
        try:
            result = await work()
        except errors as error:
            self.down(error)
            raise unavailable(what) from None
        self.up(started_up)
        return result

    def uncounted(self, admission: Admission) -> Ticket:
        """The ticket of a call let through while the store is down, per the policy;
        raises :class:`LimiterUnavailable` when a kind it needs fails closed."""
        closed = self.policy.closed_kinds(admission)
        if closed:
            raise unavailable(" and ".join(closed) + " limits")
        return Ticket(secrets.token_hex(10), admission.client, 0, accounted=False)


def unavailable(what: str) -> LimiterUnavailable:
    return LimiterUnavailable(
        f"the shared limits store is unreachable, so {what} cannot be checked; retry shortly"
    )
