"""The circuit breaker's states on a clock the test moves by hand."""

from __future__ import annotations

from imagegate_server.routing.breaker import BreakerPolicy, CircuitBreaker, Permit, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, seen: list[State] | None = None) -> CircuitBreaker:
    policy = BreakerPolicy(failures=3, window_s=10, open_s=30)
    return CircuitBreaker(policy, clock=clock, on_change=seen.append if seen is not None else None)


def test_failures_in_a_row_open_it_and_a_success_resets_the_row() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.failed(Permit.CALL)
    breaker.succeeded(Permit.CALL)
    for _ in range(2):
        breaker.failed(Permit.CALL)
    assert breaker.state is State.CLOSED
    breaker.failed(Permit.CALL)
    assert breaker.state is State.OPEN
    assert breaker.allow() is None
    assert breaker.reopens_in() == 30


def test_failures_spread_wider_than_the_window_do_not_open_it() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(5):
        breaker.failed(Permit.CALL)
        breaker.failed(Permit.CALL)
        clock.now += 11  # the row started more than the window ago: a new row
    assert breaker.state is State.CLOSED


def test_half_open_lets_one_probe_through_whose_outcome_decides() -> None:
    clock = Clock()
    seen: list[State] = []
    breaker = _breaker(clock, seen)
    for _ in range(3):
        breaker.failed(Permit.CALL)
    clock.now += 30
    assert breaker.state is State.HALF_OPEN
    probe = breaker.allow()
    assert probe is Permit.PROBE
    assert breaker.allow() is None  # one probe at a time
    breaker.failed(probe)
    assert breaker.state is State.OPEN and breaker.allow() is None
    clock.now += 30
    probe = breaker.allow()
    assert probe is Permit.PROBE
    breaker.release(probe)  # its caller went away: no verdict, the next call probes
    probe = breaker.allow()
    assert probe is Permit.PROBE
    breaker.succeeded(probe)
    assert breaker.state is State.CLOSED and breaker.allow() is Permit.CALL
    assert seen == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN, State.CLOSED]


def test_calls_that_began_before_it_opened_do_not_reopen_or_shorten_it() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.failed(Permit.CALL)
    clock.now += 20
    breaker.failed(Permit.CALL)  # a late failure of a call sent while closed
    assert breaker.reopens_in() == 10
