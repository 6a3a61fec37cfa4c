"""The Lua scripts' edge cases, on a real redis-server: calendar, replays, sweeps, keys."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import redis.asyncio
from redis.crc import key_slot

from imagegate_server.limits import Admission, Budget, RateLimit, RedisLimiter, lua, redis_wire
from imagegate_server.limits.periods import day_number, month_number

CLIENT = "team-a"


def _month_starts() -> list[float]:
    moments = []
    for year in range(1970, 2201):
        for month in range(1, 13):
            start = datetime(year, month, 1, tzinfo=UTC).timestamp()
            moments += [start - 1, start]
    return moments


async def test_lua_numbers_utc_days_and_months_as_python_does(
    redis_client: redis.asyncio.Redis,
) -> None:
    rng = random.Random(8)
    moments = [m for m in _month_starts() if m >= 0]
    moments += [rng.uniform(0, 7_300_000_000) for _ in range(2000)]
    moments += [datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp(), 951_782_400.0]
    seconds = [int(m) for m in moments]
    body = (
        "local out = {} for i = 1, #ARGV do local d = day_of(tonumber(ARGV[i])) "
        "out[#out + 1] = d; out[#out + 1] = month_of(d) end return out"
    )
    reply = await redis_client.eval(lua.source("common") + body, 0, *seconds)
    got = list(zip(reply[0::2], reply[1::2], strict=True))
    expected = [(day_number(s), month_number(s)) for s in seconds]
    assert got == expected


async def test_stored_times_are_plain_integers(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    rate = RateLimit("images_per_minute", 7, 7, 3, CLIENT)  # T = 8,571,429 us
    await redis_limiter.admit(Admission(CLIENT, rates=(rate,)))
    rates_key = redis_limiter.client_keys(CLIENT)[0]
    tat = await redis_client.hget(rates_key, "images_per_minute")
    assert tat is not None and tat.isdigit(), tat


async def test_an_admit_replayed_for_the_same_ticket_charges_nothing(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    # What a redis-py retry after a lost reply does: the same ticket again.
    admit = redis_client.register_script(lua.source("admit"))
    keys = list(redis_limiter.client_keys(CLIENT))
    rate = RateLimit("images_per_minute", 10, 10, 4, CLIENT)
    admission = Admission(CLIENT, rates=(rate,), max_concurrent=3, hold_s=60)
    args = redis_wire.admit_args("ticket-1", admission, admission.rates)
    assert (await admit(keys=keys, args=args))[0] == 1
    tat = await redis_client.hget(keys[0], rate.name)
    assert (await admit(keys=keys, args=args))[0] == 2
    assert await redis_client.hget(keys[0], rate.name) == tat
    assert await redis_client.zcard(keys[1]) == 1


async def test_a_settle_replayed_for_the_same_ticket_books_once(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    budget = Budget("daily_budget", "day", 10_000_000)
    ticket = await redis_limiter.admit(Admission(CLIENT, budgets=(budget,), reserve_micros=1000))
    settle = redis_client.register_script(lua.source("settle"))
    keys = list(redis_limiter.client_keys(CLIENT)[1:])
    assert await settle(keys=keys, args=[ticket.id, 700, 60_000_000]) == 1
    assert await settle(keys=keys, args=[ticket.id, 700, 60_000_000]) == 0
    spend = await redis_client.hgetall(keys[1])
    assert spend["day_micros"] == spend["month_micros"] == "700"
    assert spend["reserved"] == "0"
    assert f"r:{ticket.id}" not in spend


async def test_admit_sweeps_what_dead_replicas_left(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    _, open_key, spend_key, _ = redis_limiter.client_keys(CLIENT)
    # Two calls of a replica that died an hour ago, and one still in time.
    for ticket, expiry in (("dead-1", 1), ("dead-2", 2), ("alive", 2**52)):
        await redis_client.zadd(open_key, {ticket: expiry})
        await redis_client.hset(spend_key, f"r:{ticket}", 250)
    await redis_client.hset(spend_key, "reserved", 750)

    budget = Budget("daily_budget", "day", 1000)
    ticket = await redis_limiter.admit(Admission(CLIENT, budgets=(budget,), reserve_micros=500))

    assert set(await redis_client.zrange(open_key, 0, -1)) == {"alive", ticket.id}
    assert await redis_client.hget(spend_key, "reserved") == "750"  # 250 alive + 500 new
    assert await redis_client.hget(spend_key, "r:dead-1") is None


async def test_spend_from_an_earlier_period_does_not_count(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    spend_key = redis_limiter.client_keys(CLIENT)[2]
    now = datetime.now(UTC).timestamp()
    # What a quiet client left behind: spend of yesterday and of last month.
    await redis_client.hset(
        spend_key,
        mapping={
            "day": day_number(now) - 1,
            "day_micros": 999_999,
            "month": month_number(now) - 1,
            "month_micros": 999_999,
        },
    )
    budgets = (Budget("daily_budget", "day", 1_000_000), Budget("monthly", "month", 1_000_000))
    ticket = await redis_limiter.admit(Admission(CLIENT, budgets=budgets, reserve_micros=900_000))
    await redis_limiter.settle(ticket, 123)
    status = await redis_limiter.status(CLIENT, (), None, budgets)
    assert status.spent_today_micros == status.spent_this_month_micros == 123
    assert await redis_client.hget(spend_key, "day") == str(day_number(now))


async def test_the_ceiling_refund_never_goes_back_before_now(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    key = redis_limiter.gateway_key()
    await redis_client.hset(key, "gateway_images_per_minute", 5)  # long drained
    refund = redis_client.register_script(lua.source("ceiling_refund"))
    await refund(keys=[key], args=[1, "gateway_images_per_minute", 6_000_000, 4])
    now_s, _ = await redis_client.time()
    tat = int(await redis_client.hget(key, "gateway_images_per_minute"))
    assert tat >= (now_s - 1) * 1_000_000


async def test_every_key_of_a_client_is_in_one_slot_and_expires(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    client = "odd {name}: with } braces {"
    rate = RateLimit("images_per_minute", 10, 10, 1, client)
    budget = Budget("daily_budget", "day", 1000)
    call = Admission(client, rates=(rate,), max_concurrent=2, budgets=(budget,), reserve_micros=9)
    await redis_limiter.settle(await redis_limiter.admit(call), 5)

    keys = redis_limiter.client_keys(client)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert keys != redis_limiter.client_keys("odd {name}")
    for key in keys:
        if key.endswith(":open"):
            continue  # emptied by the settle: Redis deleted it
        assert await redis_client.exists(key), key
        assert await redis_client.pttl(key) > 0, key


@pytest.mark.parametrize("cost", [0, -1])
def test_zero_and_negative_costs_never_reach_a_script(cost: int) -> None:
    with pytest.raises(ValueError, match="cost"):
        RateLimit("images_per_minute", 10, 10, cost, CLIENT)


def test_a_key_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisLimiter(redis.asyncio.Redis(), prefix="bad{prefix}:")


async def test_scripts_are_reloaded_when_redis_forgot_them(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    call = Admission(CLIENT, rates=(RateLimit("requests_per_minute", 60, 60, 1, CLIENT),))
    await redis_limiter.admit(call)
    await redis_client.script_flush()  # as after a restart or a failover
    ticket = await redis_limiter.admit(call)
    assert ticket.accounted
    assert redis_limiter.state == "up"
