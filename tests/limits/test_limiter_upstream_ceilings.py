"""Per-upstream ceilings and spend, the same on every backend (memory, local, Redis)."""

from __future__ import annotations

import math

import pytest
import redis.asyncio
from redis_support import RedisServer

from imagegate_server.limits import (
    MAX_CLIENT_UPSTREAMS,
    Admission,
    Limiter,
    LimiterUnavailable,
    OutagePolicy,
    RateLimit,
    RedisLimiter,
    UpstreamSpend,
)


def _ceilings(images: int, n: int = 1) -> tuple[RateLimit, ...]:
    return (
        RateLimit("upstream_requests_per_minute", 100, 100, 1, ""),
        RateLimit("upstream_images_per_minute", images, images, n, ""),
    )


async def test_an_upstream_ceiling_admits_its_burst_then_says_how_long_to_wait(
    limiter: Limiter,
) -> None:
    for _ in range(4):
        assert await limiter.take_upstream("team-a", _ceilings(4)) == 0
    wait = await limiter.take_upstream("team-a", _ceilings(4))
    assert 0 < wait <= 15.0  # one image per 15 s at 4 per minute
    # Another upstream's ceilings are its own.
    assert await limiter.take_upstream("team-b", _ceilings(4)) == 0


async def test_a_refused_ceiling_charges_none_of_the_upstreams_limits(limiter: Limiter) -> None:
    assert await limiter.take_upstream("a", _ceilings(4, n=3)) == 0
    assert await limiter.take_upstream("a", _ceilings(4, n=3)) > 0  # 3 + 3 > 4
    status = await limiter.upstream_status("a", _ceilings(4))
    requests, images = status.rates
    assert (requests.remaining, images.remaining) == (99, 1)  # the refused call took nothing


async def test_a_call_above_the_burst_can_never_pass(limiter: Limiter) -> None:
    assert math.isinf(await limiter.take_upstream("a", _ceilings(4, n=5)))


async def test_spend_is_booked_to_the_upstream_that_answered(limiter: Limiter) -> None:
    for client, cost, upstream in (("c1", 700, "a"), ("c2", 300, "a"), ("c1", 50, "b")):
        ticket = await limiter.admit(Admission(client=client))
        await limiter.settle(ticket, cost, upstream)
    ticket = await limiter.admit(Admission(client="c1"))
    await limiter.settle(ticket, 999)  # no upstream named: no upstream's spend
    a = await limiter.upstream_status("a", ())
    b = await limiter.upstream_status("b", ())
    assert (a.spent_today_micros, a.spent_this_month_micros) == (1000, 1000)
    assert (b.spent_today_micros, b.rates) == (50, ())
    none = await limiter.upstream_status("never-used", _ceilings(4))
    assert none.spent_today_micros == 0 and none.rates[1].remaining == 4
    listing = await limiter.list_spend()
    assert {c.client for c in listing.clients} == {"c1", "c2"}  # upstreams are no clients


async def test_redis_keeps_each_upstream_in_one_hash_slot(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis, prefix: str
) -> None:
    assert await redis_limiter.take_upstream("team a/1", _ceilings(4)) == 0
    ticket = await redis_limiter.admit(Admission(client="c"))
    await redis_limiter.settle(ticket, 10, "team a/1")
    keys = sorted(await redis_client.keys(f"{prefix}{{u:*"))
    assert keys == [
        f"{prefix}{{u:team%20a%2F1}}:done",
        f"{prefix}{{u:team%20a%2F1}}:rates",
        f"{prefix}{{u:team%20a%2F1}}:spend",
    ]
    # A settle retried after a lost reply books the cost once.
    await redis_limiter._run(
        "upstream_spend",
        list(redis_limiter.upstream_keys("team a/1")[1:]),
        [ticket.id, 10, 10_000_000],
    )
    status = await redis_limiter.upstream_status("team a/1", ())
    assert status.spent_today_micros == 10


async def test_while_redis_is_down_ceilings_follow_the_rates_outage_policy(
    own_redis: RedisServer, prefix: str
) -> None:
    opened = RedisLimiter.from_url(own_redis.url, prefix=prefix, timeout_s=0.3)
    closed = RedisLimiter.from_url(
        own_redis.url, prefix=prefix, timeout_s=0.3, policy=OutagePolicy(rates_open=False)
    )
    try:
        own_redis.stop()
        assert await opened.take_upstream("a", _ceilings(1)) == 0  # let through uncounted
        assert await opened.take_upstream("a", _ceilings(1)) == 0
        with pytest.raises(LimiterUnavailable):
            await closed.take_upstream("a", _ceilings(1))
        with pytest.raises(LimiterUnavailable):
            await opened.upstream_status("a", _ceilings(1))
    finally:
        await opened.aclose()
        await closed.aclose()


async def test_each_client_sees_its_own_spend_per_upstream(limiter: Limiter) -> None:
    for client, cost, upstream in (("c1", 700, "a"), ("c2", 300, "a"), ("c1", 50, "b")):
        ticket = await limiter.admit(Admission(client=client))
        await limiter.settle(ticket, cost, upstream)
    ticket = await limiter.admit(Admission(client="c1"))
    await limiter.settle(ticket, 0, "b")  # a call that cost nothing books nothing
    ticket = await limiter.admit(Admission(client="c1"))
    await limiter.settle(ticket, 9, None)  # no upstream named: the client's total only
    assert await limiter.client_upstream_spend("c1") == (
        UpstreamSpend("a", 700, 700),
        UpstreamSpend("b", 50, 50),
    )
    assert await limiter.client_upstream_spend("c2") == (UpstreamSpend("a", 300, 300),)
    assert await limiter.client_upstream_spend("never-called") == ()
    status = await limiter.status("c1", (), None, ())
    assert status.spent_today_micros == 759


async def test_a_client_books_at_most_its_bound_of_upstreams(limiter: Limiter) -> None:
    for index in range(MAX_CLIENT_UPSTREAMS + 3):
        ticket = await limiter.admit(Admission(client="c"))
        await limiter.settle(ticket, 1, f"u{index:04d}")
    ticket = await limiter.admit(Admission(client="c"))
    await limiter.settle(ticket, 5, "u0000")  # one it holds still counts
    spends = await limiter.client_upstream_spend("c")
    assert len(spends) == MAX_CLIENT_UPSTREAMS
    assert spends[0] == UpstreamSpend("u0000", 6, 6)
    status = await limiter.status("c", (), None, ())
    assert status.spent_this_month_micros == MAX_CLIENT_UPSTREAMS + 3 + 5  # the total has all


async def test_redis_keeps_a_clients_spend_per_upstream_in_its_slot_and_books_it_once(
    redis_limiter: RedisLimiter, redis_client: redis.asyncio.Redis, prefix: str
) -> None:
    ticket = await redis_limiter.admit(Admission(client="team a"))
    await redis_limiter.settle(ticket, 10, "azure/eu")
    keys = sorted(await redis_client.keys(f"{prefix}{{c:team%20a}}:up*"))
    assert keys == [f"{prefix}{{c:team%20a}}:upday", f"{prefix}{{c:team%20a}}:upmonth"]
    day_ttl = await redis_client.pttl(keys[0])
    month_ttl = await redis_client.pttl(keys[1])
    assert 0 < day_ttl <= 2 * 86400 * 1000 < month_ttl <= 33 * 86400 * 1000
    # A settle retried after a lost reply books the cost once.
    await redis_limiter._run(
        "settle",
        [*redis_limiter.client_keys("team a")[1:], *redis_limiter.client_upstream_keys("team a")],
        [ticket.id, 10, 10_000_000, "azure/eu", MAX_CLIENT_UPSTREAMS],
    )
    assert await redis_limiter.client_upstream_spend("team a") == (
        UpstreamSpend("azure/eu", 10, 10),
    )


async def test_while_redis_is_down_spend_per_upstream_cannot_be_read(
    own_redis: RedisServer, prefix: str
) -> None:
    limiter = RedisLimiter.from_url(own_redis.url, prefix=prefix, timeout_s=0.3)
    try:
        own_redis.stop()
        with pytest.raises(LimiterUnavailable):
            await limiter.client_upstream_spend("c")
    finally:
        await limiter.aclose()
