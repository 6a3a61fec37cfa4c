"""What only the local store promises: one set of limits for every connection to the
file (every worker), state kept across a restart, no slot leaked by a cancelled
admission, and an unusable database handled like a Redis outage."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis_support import RedisServer

from imagegate_server.errors import LimiterUnavailable
from imagegate_server.limits import (
    SCHEMA,
    Admission,
    Budget,
    LimitRefused,
    RateLimit,
    RedisLimiter,
    SqliteLimiter,
    UpstreamSpend,
)
from imagegate_server.localdb import FILE_NAME, LocalDatabase, Schema

CLIENT = "team-a"
DOLLAR = 1_000_000


@pytest.fixture
async def two_databases(tmp_path: Path) -> AsyncIterator[tuple[LocalDatabase, LocalDatabase]]:
    """Two connections to one file, each on its own thread: as two workers have."""
    first = await LocalDatabase.open(tmp_path, SCHEMA)
    second = await LocalDatabase.open(tmp_path, SCHEMA)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_every_connection_to_the_file_enforces_one_set_of_limits(
    two_databases: tuple[LocalDatabase, LocalDatabase],
) -> None:
    one, other = (SqliteLimiter(db) for db in two_databases)
    images = RateLimit("images_per_minute", 4, 4, 1, CLIENT)
    ceiling = RateLimit("gateway_images_per_minute", 100, 100, 1, "")
    call = Admission(CLIENT, rates=(images, ceiling), max_concurrent=10)
    admitted = await asyncio.gather(
        *(limiter.admit(call) for limiter in (one, other) * 4), return_exceptions=True
    )
    assert sum(not isinstance(a, BaseException) for a in admitted) == 4
    with pytest.raises(LimitRefused):
        await other.admit(call)
    status = await one.status(CLIENT, (images, ceiling), 10, ())
    assert [rate.remaining for rate in status.rates] == [0, 96]
    assert status.concurrent_in_use == 4


async def test_spend_rates_and_calls_in_flight_survive_reopening(tmp_path: Path) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    rate = RateLimit("requests_per_minute", 2, 2, 1, CLIENT)
    call = Admission(CLIENT, rates=(rate,), max_concurrent=5, budgets=(budget,), reserve_micros=1)
    database = await LocalDatabase.open(tmp_path, SCHEMA)
    limiter = SqliteLimiter(database)
    await limiter.settle(await limiter.admit(call), 700_000)
    await limiter.admit(call)  # still in flight when the process goes
    await database.aclose()

    database = await LocalDatabase.open(tmp_path, SCHEMA)
    try:
        limiter = SqliteLimiter(database)
        status = await limiter.status(CLIENT, (rate,), 5, (budget,))
        assert status.spent_today_micros == status.spent_this_month_micros == 700_000
        assert status.concurrent_in_use == 1  # until its hold expires
        assert status.reserved_micros == 1
        assert status.rates[0].remaining == 0
        assert (await _refused(limiter, call)).limit == "requests_per_minute"
    finally:
        await database.aclose()


async def test_a_cancelled_admission_gives_its_slot_back(tmp_path: Path) -> None:
    database = await LocalDatabase.open(tmp_path, SCHEMA)
    try:
        limiter = SqliteLimiter(database)
        call = Admission(CLIENT, max_concurrent=1)
        admitting = asyncio.create_task(limiter.admit(call))
        await asyncio.sleep(0)  # submitted to the database's thread
        admitting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await admitting
        # The transaction ran to its end, then the release behind it (queued when it
        # ended, so after the first read below).
        await limiter.status(CLIENT, (), 1, ())
        assert (await limiter.status(CLIENT, (), 1, ())).concurrent_in_use == 0
        await limiter.admit(call)
    finally:
        await database.aclose()


async def test_a_locked_database_fails_like_an_outage_rates_open_budgets_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="imagegate_server.limits.outage")
    database = await LocalDatabase.open(tmp_path, SCHEMA, busy_timeout_s=0.1)
    holder = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    try:
        limiter = SqliteLimiter(database)
        holder.execute("BEGIN EXCLUSIVE")  # a process stuck holding the write lock
        rates_only = Admission(CLIENT, rates=(RateLimit("requests_per_minute", 1, 1, 1, CLIENT),))
        ticket = await limiter.admit(rates_only)
        assert ticket.accounted is False
        assert limiter.state == "unreachable"
        with pytest.raises(LimiterUnavailable) as closed:
            await limiter.admit(Admission(CLIENT, budgets=(Budget("daily_budget", "day", 1),)))
        assert "budget limits cannot be checked" in str(closed.value)
        holder.execute("ROLLBACK")

        await asyncio.sleep(1.05)  # the next probe
        counted = await limiter.admit(rates_only)
        assert counted.accounted is True
        assert limiter.state == "up"
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2
        assert messages[0].startswith(
            f"limits store unreachable (OperationalError from {tmp_path / FILE_NAME})"
        )
        assert messages[1].startswith(f"limits store working again ({tmp_path / FILE_NAME}, after ")
    finally:
        holder.close()
        await database.aclose()


async def test_redis_lists_spend_of_its_own_prefix_and_decodes_client_names(
    redis_server: RedisServer,
) -> None:
    # Glob characters in the prefix are matched literally: "t*" must not see "tx".
    tag = secrets.token_hex(3)
    mine = RedisLimiter.from_url(redis_server.url, prefix=f"t{tag}*?[a]:")
    other = RedisLimiter.from_url(redis_server.url, prefix=f"t{tag}xya:")
    try:
        odd = "team:a/ü %"
        await mine.settle(await mine.admit(Admission(odd)), 42)
        await other.settle(await other.admit(Admission("elsewhere")), 7)
        listing = await mine.list_spend()
        assert [(c.client, c.spent_today_micros) for c in listing.clients] == [(odd, 42)]
    finally:
        await mine.aclose()
        await other.aclose()


async def _refused(limiter: SqliteLimiter, call: Admission) -> LimitRefused:
    with pytest.raises(LimitRefused) as caught:
        await limiter.admit(call)
    return caught.value


async def test_a_database_of_the_release_before_keeps_its_spend_and_books_per_upstream(
    tmp_path: Path,
) -> None:
    older = Schema(SCHEMA.component, SCHEMA.steps[:2])  # before spend per client and upstream
    database = await LocalDatabase.open(tmp_path, older)
    limiter = SqliteLimiter(database)
    await limiter.settle(await limiter.admit(Admission(CLIENT, max_concurrent=1)), 500)
    await database.aclose()

    database = await LocalDatabase.open(tmp_path, SCHEMA)
    try:
        limiter = SqliteLimiter(database)
        await limiter.settle(await limiter.admit(Admission(CLIENT, max_concurrent=1)), 70, "a")
        status = await limiter.status(CLIENT, (), None, ())
        assert status.spent_today_micros == 570
        assert await limiter.client_upstream_spend(CLIENT) == (UpstreamSpend("a", 70, 70),)
        assert limiter.state == "up"
    finally:
        await database.aclose()
