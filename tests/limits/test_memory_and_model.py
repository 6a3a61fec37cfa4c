"""Values are checked when built; the memory and local backends across UTC day and
month ends, on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagegate_server.errors import LimiterUnavailable, LimitExceeded, LimitRefused
from imagegate_server.limits import (
    SCHEMA,
    Admission,
    Budget,
    Limiter,
    MemoryLimiter,
    RateLimit,
    SqliteLimiter,
)
from imagegate_server.limits.periods import period_end
from imagegate_server.localdb import LocalDatabase
from imagegate_server.pricing.money import format_usd

CLIENT = "team-a"


class HandClock:
    """Time that moves only when the test says so (for UTC period boundaries)."""

    def __init__(self, unix_s: float) -> None:
        self.unix = unix_s
        self.mono_us = 1_000_000_000

    def monotonic_us(self) -> int:
        return self.mono_us

    def unix_s(self) -> float:
        return self.unix

    def advance(self, seconds: float) -> None:
        self.unix += seconds
        self.mono_us += round(seconds * 1_000_000)


Clocked = Callable[[HandClock], Limiter]


@pytest.fixture(params=["memory", "local"])
async def clocked(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Clocked]:
    """A limiter of each backend that keeps its state in this process, on a hand clock."""
    if request.param == "memory":
        yield lambda clock: MemoryLimiter(clock=clock)
        return
    database = await LocalDatabase.open(tmp_path, SCHEMA)
    yield lambda clock: SqliteLimiter(database, clock=clock)
    await database.aclose()


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("per_minute", {"per_minute": 0}),
        ("per_minute", {"per_minute": 1_000_001}),
        ("burst", {"burst": 0}),
        ("cost", {"cost": 0}),
        ("cost", {"cost": -3}),
        ("name", {"name": ""}),
    ],
)
def test_bad_rate_limits_are_refused_when_built(field: str, kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {
        "name": "images_per_minute", "per_minute": 10, "burst": 10, "cost": 1, "scope": CLIENT,
    } | kwargs  # fmt: skip
    with pytest.raises(ValueError, match=field):
        RateLimit(**values)  # type: ignore[arg-type]


def test_bad_admissions_are_refused_when_built() -> None:
    rate = RateLimit("images_per_minute", 10, 10, 1, CLIENT)
    with pytest.raises(ValueError, match="unique"):
        Admission(CLIENT, rates=(rate, rate))
    with pytest.raises(ValueError, match="unique"):
        Admission(CLIENT, budgets=(Budget("concurrent_calls", "day", 1),))
    with pytest.raises(ValueError, match="scope"):
        Admission("team-b", rates=(rate,))
    with pytest.raises(ValueError, match="reserve_micros"):
        Admission(CLIENT, reserve_micros=-1)
    with pytest.raises(ValueError, match="hold_s"):
        Admission(CLIENT, hold_s=0)
    with pytest.raises(ValueError, match="max_concurrent"):
        Admission(CLIENT, max_concurrent=-1)
    with pytest.raises(ValueError, match="period"):
        Budget("weekly", "week", 1)  # type: ignore[arg-type]


def test_the_emission_interval_rounds_up_to_whole_microseconds() -> None:
    assert RateLimit("r", 7, 7, 1, CLIENT).emission_us == 8_571_429
    assert RateLimit("r", 60, 60, 1, CLIENT).emission_us == 1_000_000


def test_the_errors_sit_in_the_project_tree() -> None:
    error = LimitRefused("images_per_minute", "x", client=CLIENT, retry_after_s=1.5)
    assert isinstance(error, LimitExceeded)
    assert error.subject == "images_per_minute"
    assert not issubclass(LimiterUnavailable, LimitExceeded)


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (10_000_000, "$10.00"),
        (41_500, "$0.0415"),
        (1, "$0.000001"),
        (1_234_567_890, "$1,234.56789"),
    ],
)
def test_money_is_shown_exactly(micros: int, text: str) -> None:
    assert format_usd(micros) == text


async def test_negative_costs_cannot_be_settled() -> None:
    limiter = MemoryLimiter()
    ticket = await limiter.admit(Admission(CLIENT))
    with pytest.raises(ValueError, match="cost_micros"):
        await limiter.settle(ticket, -1)


async def test_a_day_budget_starts_over_at_utc_midnight_and_a_month_budget_at_the_month(
    clocked: Clocked,
) -> None:
    clock = HandClock(datetime(2026, 1, 30, 23, 59, 0, tzinfo=UTC).timestamp())
    limiter = clocked(clock)
    day = Budget("daily_budget", "day", 1_000_000)
    month = Budget("monthly_budget", "month", 1_500_000)
    call = Admission(CLIENT, budgets=(day, month), reserve_micros=900_000)

    await limiter.settle(await limiter.admit(call), 900_000)
    refused = await _refused(limiter, call)
    assert refused.limit == "monthly_budget"  # both refuse; the month ends later
    assert refused.retry_after_s == pytest.approx(86_400 + 60)

    clock.advance(61)  # 2026-01-31 00:00:01: a new day, the same month
    status = await limiter.status(CLIENT, (), None, (day, month))
    assert (status.spent_today_micros, status.spent_this_month_micros) == (0, 900_000)
    refused = await _refused(limiter, call)
    assert refused.limit == "monthly_budget"  # the day alone would pass now
    assert refused.retry_after_s == pytest.approx(86_400 - 1)

    clock.advance(86_400)  # 2026-02-01 00:00:01: a new month
    status = await limiter.status(CLIENT, (), None, (day, month))
    assert (status.spent_today_micros, status.spent_this_month_micros) == (0, 0)
    await limiter.settle(await limiter.admit(call), 700_000)

    clock.advance(86_400)  # 2026-02-02
    status = await limiter.status(CLIENT, (), None, (day, month))
    assert (status.spent_today_micros, status.spent_this_month_micros) == (0, 700_000)
    refused = await _refused(limiter, call)
    until_march = datetime(2026, 3, 1, tzinfo=UTC).timestamp() - clock.unix
    assert refused.retry_after_s == pytest.approx(until_march)
    assert status.budgets[0].period_ends_at == datetime(2026, 2, 3, tzinfo=UTC)
    assert status.budgets[1].period_ends_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_period_ends_across_the_year_and_a_leap_day() -> None:
    assert period_end("month", datetime(2026, 12, 31, 12, tzinfo=UTC).timestamp()) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert period_end("day", datetime(2028, 2, 28, 23, 59, 59, tzinfo=UTC).timestamp()) == datetime(
        2028, 2, 29, tzinfo=UTC
    )


async def test_rates_refill_with_time(clocked: Clocked) -> None:
    clock = HandClock(1_800_000_000)
    limiter = clocked(clock)
    call = Admission(CLIENT, rates=(RateLimit("images_per_minute", 10, 10, 5, CLIENT),))
    await limiter.admit(call)
    await limiter.admit(call)
    refused = await _refused(limiter, call)
    assert refused.retry_after_s == pytest.approx(30)
    clock.advance(29.999)
    await _refused(limiter, call)
    clock.advance(0.001)
    await limiter.admit(call)


async def test_idle_clients_are_forgotten_but_this_months_spend_is_kept() -> None:
    clock = HandClock(datetime(2026, 5, 10, tzinfo=UTC).timestamp())
    limiter = MemoryLimiter(clock=clock)
    rate = (RateLimit("requests_per_minute", 60, 60, 1, "quiet"),)
    await limiter.admit(Admission("quiet", rates=rate))
    spender = await limiter.admit(Admission("spender"))
    await limiter.settle(spender, 5)
    clock.advance(3600)
    await limiter.admit(Admission("other"))  # a call lets the collector run
    assert "quiet" not in limiter._clients
    assert (await limiter.status("spender", (), None, ())).spent_this_month_micros == 5


async def _refused(limiter: Limiter, call: Admission) -> LimitRefused:
    with pytest.raises(LimitRefused) as caught:
        await limiter.admit(call)
    return caught.value
