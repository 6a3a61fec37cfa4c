"""What the Redis limiter does while redis-server is down, and when it is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis_support import RedisServer

from imagegate_server.errors import StartupError
from imagegate_server.limits import (
    Admission,
    Budget,
    LimiterUnavailable,
    MemoryLimiter,
    OutagePolicy,
    RateLimit,
    RedisLimiter,
    build_limiter,
)
from imagegate_server.settings import Settings

LOGGER = "imagegate_server.limits.outage"
PASSWORD = "s3cret-redis-PASSWORD"
CLIENT = "team-a"
RATES = (
    RateLimit("requests_per_minute", 600, 600, 1, CLIENT),
    RateLimit("gateway_images_per_minute", 600, 600, 1, ""),
)
BUDGET = Budget("daily_budget", "day", 10_000_000)
RATES_ONLY = Admission(CLIENT, rates=RATES)
WITH_SLOT = Admission(CLIENT, rates=RATES, max_concurrent=10)
WITH_BUDGET = Admission(CLIENT, rates=RATES, budgets=(BUDGET,), reserve_micros=100_000)


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.fixture
def secured_redis(tmp_path: Path) -> RedisServer:
    with RedisServer(tmp_path, password=PASSWORD) as server:
        yield server


@pytest.fixture
async def outage_limiter(secured_redis: RedisServer, prefix: str) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter.from_url(
        secured_redis.url, prefix=prefix, timeout_s=0.5, probe_interval_s=0.2
    )
    yield limiter
    await limiter.aclose()


async def test_a_call_with_no_limit_needs_no_round_trip(
    secured_redis: RedisServer, outage_limiter: RedisLimiter
) -> None:
    """Nothing to check or hold: Redis is not asked (a stopped Redis is not even
    noticed), and the ticket's cost is booked at settle once Redis answers."""
    secured_redis.stop()
    ticket = await outage_limiter.admit(Admission(CLIENT))
    assert ticket.accounted is False
    assert outage_limiter.state == "up"


async def test_redis_down_rates_fail_open_budgets_fail_closed_one_line_each_way(
    secured_redis: RedisServer, outage_limiter: RedisLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    limiter = outage_limiter
    held = await limiter.admit(WITH_BUDGET)
    assert held.accounted and limiter.state == "up"

    secured_redis.stop()
    for _ in range(20):
        ticket = await limiter.admit(RATES_ONLY)
        assert ticket.accounted is False
        assert (await limiter.admit(WITH_SLOT)).accounted is False
        with pytest.raises(LimiterUnavailable) as unavailable:
            await limiter.admit(WITH_BUDGET)
        await limiter.settle(ticket, 5000)  # nothing to settle, and no error
        await asyncio.sleep(0.05)  # 1 s in all: several probes find Redis still down
    assert "budget" in unavailable.value.message
    with pytest.raises(LimiterUnavailable):
        await limiter.status(CLIENT, RATES, None, (BUDGET,))
    await limiter.settle(held, 70_000)  # lost with Redis; never raises
    assert limiter.state == "unreachable"
    assert limiter.outages == 1

    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "rates fail open" in warnings[0] and "budgets fail closed" in warnings[0]
    assert f"127.0.0.1:{secured_redis.port}" in warnings[0]
    assert PASSWORD not in caplog.text
    assert PASSWORD not in unavailable.value.message

    secured_redis.start()  # same port, empty: no persistence
    await asyncio.sleep(0.3)  # past the probe interval
    back = await limiter.admit(WITH_BUDGET)
    assert back.accounted and limiter.state == "up"
    assert len(lines(caplog, logging.INFO)) == 1
    assert len(lines(caplog, logging.WARNING)) == 1
    await limiter.settle(back, 90_000)
    status = await limiter.status(CLIENT, RATES, None, (BUDGET,))
    assert status.spent_today_micros == 90_000


async def test_fail_closed_rates_and_fail_open_budgets_are_honoured(
    secured_redis: RedisServer, prefix: str
) -> None:
    policy = OutagePolicy(rates_open=False, concurrency_open=False, budgets_open=True)
    limiter = RedisLimiter.from_url(secured_redis.url, prefix=prefix, policy=policy)
    try:
        secured_redis.stop()
        with pytest.raises(LimiterUnavailable, match="rate"):
            await limiter.admit(RATES_ONLY)
        with pytest.raises(LimiterUnavailable, match="concurrency"):
            await limiter.admit(Admission(CLIENT, max_concurrent=3))
        spender = await limiter.admit(Admission(CLIENT, budgets=(BUDGET,), reserve_micros=5))
        assert spender.accounted is False
        assert spender.reserved_micros == 0
    finally:
        await limiter.aclose()


async def test_an_uncounted_call_is_still_booked_when_redis_is_back_by_its_settle(
    secured_redis: RedisServer, prefix: str
) -> None:
    policy = OutagePolicy(budgets_open=True)
    limiter = RedisLimiter.from_url(
        secured_redis.url, prefix=prefix, policy=policy, probe_interval_s=0.1
    )
    try:
        secured_redis.stop()
        ticket = await limiter.admit(WITH_BUDGET)
        assert not ticket.accounted
        secured_redis.start()
        await asyncio.sleep(0.15)
        await limiter.status(CLIENT, (), None, ())  # the probe that finds it back
        await limiter.settle(ticket, 42)
        status = await limiter.status(CLIENT, (), None, (BUDGET,))
        assert status.spent_today_micros == 42
    finally:
        await limiter.aclose()


async def test_a_quick_redis_restart_is_not_an_outage(
    secured_redis: RedisServer, outage_limiter: RedisLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert (await outage_limiter.admit(WITH_BUDGET)).accounted
    secured_redis.restart()  # the pooled connection is now dead
    assert (await outage_limiter.admit(WITH_BUDGET)).accounted
    assert outage_limiter.state == "up"
    assert lines(caplog, logging.WARNING) == []


async def test_a_wrong_password_is_a_refusal_named_once_and_never_logged(
    secured_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    wrong = f"redis://:wrong-{PASSWORD}@127.0.0.1:{secured_redis.port}/0"
    limiter = RedisLimiter.from_url(wrong, prefix=prefix, probe_interval_s=0.05)
    try:
        for _ in range(5):
            assert not (await limiter.admit(RATES_ONLY)).accounted
            with pytest.raises(LimiterUnavailable) as refused:
                await limiter.admit(WITH_BUDGET)
            await asyncio.sleep(0.06)  # each round probes Redis again
        assert limiter.state == "refusing"
    finally:
        await limiter.aclose()
    (warning,) = lines(caplog, logging.WARNING)
    assert warning.startswith(
        f"limits store refusing commands (redis://127.0.0.1:{secured_redis.port})"
    )
    assert "WRONGPASS" in warning and "IMAGEGATE_REDIS_PASSWORD" in warning
    assert "unreachable" not in warning
    assert "refusing commands" in refused.value.message
    assert PASSWORD not in caplog.text


async def test_a_redis_that_never_answers_times_out_into_the_policy(prefix: str) -> None:
    # Accepts connections and never replies: a hung Redis, or a black-holed network.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    limiter = RedisLimiter.from_url(f"redis://127.0.0.1:{port}/0", prefix=prefix, timeout_s=0.2)
    try:
        ticket = await asyncio.wait_for(limiter.admit(RATES_ONLY), 10)
        assert not ticket.accounted
        with pytest.raises(LimiterUnavailable):
            await asyncio.wait_for(limiter.admit(WITH_BUDGET), 10)
    finally:
        await limiter.aclose()
        silent.close()
        await silent.wait_closed()


def test_build_limiter_picks_the_backend_from_the_settings(secured_redis: RedisServer) -> None:
    assert isinstance(build_limiter(Settings(limits_store="memory")), MemoryLimiter)
    limiter = build_limiter(
        Settings(redis_url=secured_redis.url, redis_prefix="app:", redis_fail_open_budgets=True)
    )
    assert isinstance(limiter, RedisLimiter)
    assert limiter.client_keys("a")[0] == "app:{c:a}:rates"
    assert limiter.policy == OutagePolicy(True, True, True)


@pytest.mark.parametrize(
    "url", ["", "   ", f"http://user:{PASSWORD}@example.invalid/", f"redis://:{PASSWORD}@[::1"]
)
def test_a_bad_redis_url_stops_start_up_without_quoting_it(url: str) -> None:
    with pytest.raises(StartupError) as stopped:
        build_limiter(Settings(redis_url=url))
    assert "IMAGEGATE_REDIS_URL" in str(stopped.value)
    assert PASSWORD not in str(stopped.value)


def test_a_prefix_with_braces_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="hash tags"):
        Settings(redis_prefix="{x}")


async def test_a_slot_replaced_while_redis_is_down_is_left_for_its_caller_to_free(
    secured_redis: RedisServer, outage_limiter: RedisLimiter
) -> None:
    # An upload's slot is taken at authentication; if Redis goes away before its
    # parameters arrive, the rest of its admission passes uncounted and cannot free
    # the slot in Redis: the slot stays unsettled, so the caller settles it later.
    slot = await outage_limiter.admit(Admission(CLIENT, max_concurrent=2))
    secured_redis.stop()
    ticket = await outage_limiter.admit(
        Admission(CLIENT, rates=RATES, max_concurrent=2, replaces=slot)
    )
    assert not ticket.accounted
    assert not slot.settled
