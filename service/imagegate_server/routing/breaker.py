"""A circuit breaker per upstream: keeps calls off an upstream that keeps failing.

    closed     calls go through; ``failures`` failures in a row, all within
               ``window_s``, open it (a success resets the count; a failure more
               than ``window_s`` after the first of the row starts a new row)
    open       no call for ``open_s``; then the next call that asks becomes the one
               probe (half-open), and every other call still keeps off
    half-open  the probe's success closes it; its failure opens it again

Failures are the upstream's, not the caller's: no connection, 429, 401, 5xx,
timeouts, broken answers. An error about the request (400, 403, 404, moderation) is
an upstream that answers: it counts as a success. A probe whose call ends without a
verdict (the caller went away) frees the probe slot for the next call.

Each process keeps its own breakers (every worker of ``serve --workers``, every
replica): a failing upstream is found out by each within ``failures`` calls.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class Permit(enum.Enum):
    CALL = "call"
    PROBE = "probe"
    """The one call a half-open circuit lets through."""


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5
    window_s: float = 60.0
    open_s: float = 30.0


class CircuitBreaker:
    """One upstream's breaker. Not thread-safe: one event loop's calls use it."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = State.CLOSED
        self._row = 0
        self._row_started = 0.0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        """The state as a call asking now would find it (open turns half-open in time)."""
        if self._state is State.OPEN and self._clock() - self._opened_at >= self._policy.open_s:
            return State.HALF_OPEN
        return self._state

    def reopens_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when it would now)."""
        if self._state is not State.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._policy.open_s - self._clock())

    def allow(self) -> Permit | None:
        """Whether a call may go to the upstream now: None, or how (a PROBE from a
        half-open circuit: report its outcome, or :meth:`release` it)."""
        if self._state is State.CLOSED:
            return Permit.CALL
        if self._state is State.OPEN:
            if self._clock() - self._opened_at < self._policy.open_s:
                return None
            self._set(State.HALF_OPEN)
        if self._probing:
            return None
        self._probing = True
        return Permit.PROBE

    def succeeded(self, permit: Permit) -> None:
        self._row = 0
        if permit is Permit.PROBE:
            self._probing = False
        if self._state is not State.CLOSED:
            self._set(State.CLOSED)

    def failed(self, permit: Permit) -> None:
        now = self._clock()
        if permit is Permit.PROBE:
            self._probing = False
            self._open(now)
            return
        if self._state is not State.CLOSED:
            return  # a call that began before it opened: the row is known already
        if self._row == 0 or now - self._row_started > self._policy.window_s:
            self._row, self._row_started = 0, now
        self._row += 1
        if self._row >= self._policy.failures:
            self._open(now)

    def release(self, permit: Permit) -> None:
        """A call ended without a verdict (cancelled): a probe frees its slot."""
        if permit is Permit.PROBE:
            self._probing = False

    def _open(self, now: float) -> None:
        self._row = 0
        self._opened_at = now
        self._set(State.OPEN)

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
