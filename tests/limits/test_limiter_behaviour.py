"""What callers rely on, run against both backends (memory and a real redis-server)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from imagegate_server.limits import (
    CONCURRENCY_LIMIT,
    Admission,
    Budget,
    Limiter,
    LimitRefused,
    RateLimit,
)

CLIENT = "team-a"
DOLLAR = 1_000_000


def requests(per_minute: int = 100, *, client: str = CLIENT) -> RateLimit:
    return RateLimit("requests_per_minute", per_minute, per_minute, 1, client)


def images(n: int, per_minute: int = 10, *, client: str = CLIENT) -> RateLimit:
    return RateLimit("images_per_minute", per_minute, per_minute, n, client)


def ceiling(n: int, per_minute: int) -> RateLimit:
    return RateLimit("gateway_images_per_minute", per_minute, per_minute, n, "")


def next_utc_midnight() -> datetime:
    now = datetime.now(UTC)
    return datetime.fromtimestamp((int(now.timestamp()) // 86400 + 1) * 86400, UTC)


def next_utc_month() -> datetime:
    now = datetime.now(UTC)
    if now.month == 12:
        return datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return datetime(now.year, now.month + 1, 1, tzinfo=UTC)


async def refused(limiter: Limiter, admission: Admission) -> LimitRefused:
    with pytest.raises(LimitRefused) as caught:
        await limiter.admit(admission)
    return caught.value


async def test_a_burst_admits_exactly_the_limit_then_names_the_exact_wait(
    limiter: Limiter,
) -> None:
    call = Admission(CLIENT, rates=(requests(per_minute=10),))
    started = time.monotonic()
    for _ in range(10):
        await limiter.admit(call)
    error = await refused(limiter, call)
    elapsed = time.monotonic() - started

    # T = 6 s: the 11th unit is due 6 s after the burst began.
    assert error.limit == "requests_per_minute"
    assert error.subject == "requests_per_minute"
    assert error.client == CLIENT
    assert error.permanent is False
    assert error.retry_after_s is not None
    assert 6.0 - elapsed - 0.05 <= error.retry_after_s <= 6.0
    assert "requests_per_minute: 10 per minute" in error.message
    assert "'team-a'" in error.message
    assert "retry in" in error.message


async def test_images_cost_their_n(limiter: Limiter) -> None:
    def call(n: int) -> Admission:
        return Admission(CLIENT, rates=(images(n, per_minute=10),))

    await limiter.admit(call(4))
    await limiter.admit(call(4))
    # 8 of 10 units taken: 4 more would need 12, two emission intervals (2 x 6 s) away.
    error = await refused(limiter, call(4))
    assert error.limit == "images_per_minute"
    assert error.retry_after_s is not None
    assert 11.9 <= error.retry_after_s <= 12.0
    await limiter.admit(call(2))
    error = await refused(limiter, call(1))
    assert error.retry_after_s is not None
    assert 5.9 <= error.retry_after_s <= 6.0


async def test_a_call_larger_than_the_burst_can_never_pass(limiter: Limiter) -> None:
    error = await refused(limiter, Admission(CLIENT, rates=(images(11, per_minute=10),)))
    assert error.limit == "images_per_minute"
    assert error.permanent is True
    assert error.retry_after_s is None
    assert "can never pass" in error.message
    # And it charged nothing: the whole burst is still there.
    await limiter.admit(Admission(CLIENT, rates=(images(10, per_minute=10),)))


async def test_a_refused_images_limit_charges_no_request(limiter: Limiter) -> None:
    def call(n: int) -> Admission:
        return Admission(CLIENT, rates=(requests(per_minute=100), images(n, per_minute=10)))

    await limiter.admit(call(8))
    for _ in range(5):
        assert (await refused(limiter, call(4))).limit == "images_per_minute"
    status = await limiter.status(CLIENT, call(1).rates, None, ())
    by_name = {rate.name: rate for rate in status.rates}
    assert by_name["requests_per_minute"].remaining == 99
    assert by_name["images_per_minute"].remaining == 2


async def test_a_refused_budget_charges_no_rate_and_no_slot(limiter: Limiter) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    call = Admission(
        CLIENT,
        rates=(requests(per_minute=100), images(1, per_minute=10)),
        max_concurrent=5,
        budgets=(budget,),
        reserve_micros=600_000,
    )
    await limiter.admit(call)
    for _ in range(3):
        assert (await refused(limiter, call)).limit == "daily_budget"
    status = await limiter.status(CLIENT, call.rates, 5, (budget,))
    assert [rate.remaining for rate in status.rates] == [99, 9]
    assert status.concurrent_in_use == 1
    assert status.reserved_micros == 600_000


async def test_a_refused_concurrency_slot_charges_no_rate(limiter: Limiter) -> None:
    call = Admission(CLIENT, rates=(requests(per_minute=100),), max_concurrent=1)
    await limiter.admit(call)
    error = await refused(limiter, call)
    assert error.limit == CONCURRENCY_LIMIT
    assert error.retry_after_s is None
    assert error.permanent is False
    status = await limiter.status(CLIENT, call.rates, 1, ())
    assert status.rates[0].remaining == 99


async def test_the_longest_wait_is_reported_when_several_limits_refuse(
    limiter: Limiter,
) -> None:
    fast = RateLimit("requests_per_minute", 2, 1, 1, CLIENT)  # next unit in 30 s
    slow = RateLimit("images_per_minute", 1, 1, 1, CLIENT)  # next unit in 60 s
    call = Admission(CLIENT, rates=(fast, slow))
    await limiter.admit(call)
    error = await refused(limiter, call)
    assert error.limit == "images_per_minute"
    assert error.retry_after_s is not None
    assert 59.9 <= error.retry_after_s <= 60.0


async def test_settle_frees_the_concurrency_slot(limiter: Limiter) -> None:
    call = Admission(CLIENT, max_concurrent=2)
    first = await limiter.admit(call)
    await limiter.admit(call)
    assert (await refused(limiter, call)).limit == CONCURRENCY_LIMIT
    await limiter.settle(first, 0)
    await limiter.admit(call)
    assert (await limiter.status(CLIENT, (), 2, ())).concurrent_in_use == 2


async def test_a_reservation_without_a_slot_holds_budget_but_no_concurrency(
    limiter: Limiter,
) -> None:
    """A queued job's budget reservation is no call in flight: the client's calls (and
    its jobs as they start) still get every slot."""
    budget = Budget("daily_budget", "day", DOLLAR)
    queued = Admission(
        CLIENT, budgets=(budget,), reserve_micros=600_000, holds_slot=False, hold_s=60
    )
    reservation = await limiter.admit(queued)
    call = Admission(CLIENT, max_concurrent=1, budgets=(budget,), reserve_micros=300_000)
    await limiter.admit(call)  # the slot is free despite the reservation
    another = Admission(CLIENT, max_concurrent=1)
    assert (await refused(limiter, another)).limit == CONCURRENCY_LIMIT
    over = Admission(CLIENT, budgets=(budget,), reserve_micros=200_000)
    assert (await refused(limiter, over)).limit == "daily_budget"  # 600k + 300k held
    status = await limiter.status(CLIENT, (), 1, (budget,))
    assert (status.concurrent_in_use, status.reserved_micros) == (1, 900_000)
    await limiter.settle(reservation, 0)
    assert (await limiter.status(CLIENT, (), 1, (budget,))).reserved_micros == 300_000


async def test_unsettled_slots_and_reservations_expire_after_hold_s(limiter: Limiter) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    call = Admission(
        CLIENT, max_concurrent=2, budgets=(budget,), reserve_micros=500_000, hold_s=0.3
    )
    await limiter.admit(call)
    await limiter.admit(call)
    assert (await refused(limiter, call)).limit in (CONCURRENCY_LIMIT, "daily_budget")
    await asyncio.sleep(0.45)
    status = await limiter.status(CLIENT, (), 2, (budget,))
    assert status.concurrent_in_use == 0
    assert status.reserved_micros == 0
    assert status.budgets[0].remaining_micros == DOLLAR
    await limiter.admit(call)
    await limiter.admit(call)


async def test_budget_reserve_then_settle_above_and_below_the_estimate(
    limiter: Limiter,
) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    call = Admission(CLIENT, budgets=(budget,), reserve_micros=400_000)
    first = await limiter.admit(call)
    second = await limiter.admit(call)
    assert first.reserved_micros == 400_000
    assert first.accounted is True
    # 800,000 reserved: 400,000 more would exceed $1.00.
    error = await refused(limiter, call)
    assert error.limit == "daily_budget"
    assert "$1.00 per UTC day" in error.message
    assert error.retry_after_s is not None
    until_midnight = next_utc_midnight().timestamp() - time.time()
    assert abs(error.retry_after_s - until_midnight) < 2

    await limiter.settle(first, 500_123)  # the real bill was higher
    await limiter.settle(second, 99_877)  # and this one lower
    status = await limiter.status(CLIENT, (), None, (budget,))
    assert status.spent_today_micros == 600_000
    assert status.reserved_micros == 0
    assert status.budgets[0].spent_micros == 600_000
    assert status.budgets[0].remaining_micros == 400_000

    # Exactly the remaining 400,000 fits; one micro-dollar more does not.
    third = await limiter.admit(call)
    over = Admission(CLIENT, budgets=(budget,), reserve_micros=1)
    assert (await refused(limiter, over)).limit == "daily_budget"
    await limiter.settle(third, 0)  # released: it cost nothing
    status = await limiter.status(CLIENT, (), None, (budget,))
    assert status.spent_today_micros == 600_000
    assert status.budgets[0].remaining_micros == 400_000


async def test_settle_is_idempotent(limiter: Limiter) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    ticket = await limiter.admit(
        Admission(CLIENT, max_concurrent=1, budgets=(budget,), reserve_micros=300_000)
    )
    await limiter.settle(ticket, 250_000)
    await limiter.settle(ticket, 250_000)
    await limiter.settle(ticket, 0)
    assert ticket.settled
    status = await limiter.status(CLIENT, (), 1, (budget,))
    assert status.spent_today_micros == 250_000
    assert status.spent_this_month_micros == 250_000
    assert status.reserved_micros == 0
    assert status.concurrent_in_use == 0


async def test_day_and_month_budgets_both_count_and_the_longer_wait_wins(
    limiter: Limiter,
) -> None:
    day = Budget("daily_budget", "day", 3 * DOLLAR)
    month = Budget("monthly_budget", "month", 2 * DOLLAR)
    call = Admission(CLIENT, budgets=(day, month), reserve_micros=DOLLAR)
    await limiter.settle(await limiter.admit(call), DOLLAR + 500_000)
    # Month: 1.5 spent + 1 > 2 refuses; the day (1.5 + 1 <= 3) would pass.
    error = await refused(limiter, call)
    assert error.limit == "monthly_budget"
    assert error.retry_after_s is not None
    assert abs(error.retry_after_s - (next_utc_month().timestamp() - time.time())) < 2
    assert "per UTC month" in error.message

    # Both refuse: the month frees later than the day, so it is the one reported.
    bigger = Admission(CLIENT, budgets=(day, month), reserve_micros=1_600_000)
    error = await refused(limiter, bigger)
    assert error.limit == "monthly_budget"

    status = await limiter.status(CLIENT, (), None, (day, month))
    day_status, month_status = status.budgets
    assert (day_status.spent_micros, day_status.remaining_micros) == (1_500_000, 1_500_000)
    assert (month_status.spent_micros, month_status.remaining_micros) == (1_500_000, 500_000)
    assert day_status.period_ends_at == next_utc_midnight()
    assert month_status.period_ends_at == next_utc_month()


async def test_a_reservation_above_the_whole_budget_is_permanent(limiter: Limiter) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    error = await refused(limiter, Admission(CLIENT, budgets=(budget,), reserve_micros=DOLLAR + 1))
    assert error.permanent is True
    assert error.retry_after_s is None
    assert "more than the whole budget" in error.message


async def test_a_suspended_client_is_refused_permanently(limiter: Limiter) -> None:
    error = await refused(limiter, Admission(CLIENT, max_concurrent=0))
    assert error.limit == CONCURRENCY_LIMIT
    assert error.permanent is True
    assert "(suspended)" in error.message


async def test_status_numbers(limiter: Limiter) -> None:
    rates = (requests(per_minute=60), images(3, per_minute=10))
    budget = Budget("daily_budget", "day", 5 * DOLLAR)
    call = Admission(
        CLIENT, rates=rates, max_concurrent=4, budgets=(budget,), reserve_micros=250_000
    )
    settled = await limiter.admit(call)
    await limiter.admit(call)
    await limiter.settle(settled, 170_000)

    status = await limiter.status(CLIENT, rates, 4, (budget,))
    assert status.client == CLIENT
    req, img = status.rates
    assert (req.name, req.per_minute, req.burst, req.remaining) == (
        "requests_per_minute",
        60,
        60,
        58,
    )
    assert 1.9 <= req.full_in_s <= 2.0  # two units of 1 s each to drain
    assert (img.remaining, img.burst) == (4, 10)
    assert 35.9 <= img.full_in_s <= 36.0  # six units of 6 s
    assert (status.concurrent_in_use, status.max_concurrent) == (1, 4)
    assert status.spent_today_micros == 170_000
    assert status.reserved_micros == 250_000
    (day,) = status.budgets
    assert (day.limit_micros, day.spent_micros, day.reserved_micros) == (
        5 * DOLLAR,
        170_000,
        250_000,
    )
    assert day.remaining_micros == 5 * DOLLAR - 420_000

    # Reading charged nothing.
    again = await limiter.status(CLIENT, rates, 4, (budget,))
    assert [r.remaining for r in again.rates] == [58, 4]
    assert again.concurrent_in_use == 1


async def test_status_of_an_unknown_client_is_all_free(limiter: Limiter) -> None:
    rates = (requests(per_minute=60, client="nobody"),)
    budget = Budget("monthly_budget", "month", DOLLAR)
    status = await limiter.status("nobody", rates, 3, (budget,))
    assert status.rates[0].remaining == 60
    assert status.rates[0].full_in_s == 0
    assert status.concurrent_in_use == 0
    assert status.budgets[0].remaining_micros == DOLLAR
    assert status.spent_this_month_micros == 0


async def test_the_gateway_ceiling_is_shared_by_all_clients(limiter: Limiter) -> None:
    def call(client: str, n: int) -> Admission:
        return Admission(client, rates=(images(n, per_minute=100, client=client), ceiling(n, 5)))

    started = time.monotonic()
    await limiter.admit(call("team-a", 3))
    await limiter.admit(call("team-b", 2))
    error = await refused(limiter, call("team-c", 1))
    elapsed = time.monotonic() - started
    assert error.limit == "gateway_images_per_minute"
    assert error.client == "team-c"
    assert "whole gateway" in error.message
    assert error.retry_after_s is not None
    # T = 12 s from the first image, less what passed since (0.3 s once in CI).
    assert 12.0 - elapsed - 0.05 <= error.retry_after_s <= 12.0


async def test_a_client_refusal_gives_the_ceiling_back(limiter: Limiter) -> None:
    gateway = ceiling(1, 10)
    call = Admission("team-x", rates=(RateLimit("images_per_minute", 2, 2, 1, "team-x"), gateway))
    await limiter.admit(call)
    await limiter.admit(call)
    for _ in range(4):
        assert (await refused(limiter, call)).limit == "images_per_minute"
    status = await limiter.status("team-x", (gateway,), None, ())
    assert status.rates[0].remaining == 8  # only the two admitted calls count


async def test_clients_do_not_share_their_own_limits(limiter: Limiter) -> None:
    for client in ("team-a", "team-b"):
        call = Admission(client, rates=(images(10, per_minute=10, client=client),))
        await limiter.admit(call)
        assert (await refused(limiter, call)).client == client


async def test_a_slot_taken_first_counts_at_once_and_passes_to_the_full_admission(
    limiter: Limiter,
) -> None:
    # An upload takes its slot when it is authenticated, before its parameters say
    # what else it needs: slots alone fill max_concurrent.
    slot_only = Admission(CLIENT, max_concurrent=2)
    first = await limiter.admit(slot_only)
    second = await limiter.admit(slot_only)
    assert (await refused(limiter, slot_only)).limit == CONCURRENCY_LIMIT
    # The rest of the admission takes over the slot: no second slot, and the old
    # ticket counts as settled.
    budget = Budget("daily_budget", "day", DOLLAR)
    full = Admission(
        CLIENT,
        rates=(images(2),),
        max_concurrent=2,
        budgets=(budget,),
        reserve_micros=300_000,
        replaces=first,
    )
    ticket = await limiter.admit(full)
    assert first.settled and not ticket.settled
    status = await limiter.status(CLIENT, (), 2, (budget,))
    assert status.concurrent_in_use == 2
    assert status.reserved_micros == 300_000
    assert (await refused(limiter, slot_only)).limit == CONCURRENCY_LIMIT
    # Settling the ticket frees the one slot; the replaced one has nothing left to free.
    await limiter.settle(ticket, 100_000)
    await limiter.settle(first, 0)
    status = await limiter.status(CLIENT, (), 2, (budget,))
    assert status.concurrent_in_use == 1
    assert status.reserved_micros == 0
    assert status.spent_today_micros == 100_000
    await limiter.settle(second, 0)
    assert (await limiter.status(CLIENT, (), 2, ())).concurrent_in_use == 0


async def test_a_refused_full_admission_leaves_the_slot_held_until_settled(
    limiter: Limiter,
) -> None:
    slot = await limiter.admit(Admission(CLIENT, max_concurrent=3))
    rate = requests(per_minute=1)
    await limiter.settle(await limiter.admit(Admission(CLIENT, rates=(rate,))), 0)
    error = await refused(
        limiter, Admission(CLIENT, rates=(rate,), max_concurrent=3, replaces=slot)
    )
    assert error.limit == "requests_per_minute"
    assert not slot.settled
    assert (await limiter.status(CLIENT, (), 3, ())).concurrent_in_use == 1
    await limiter.settle(slot, 0)
    assert (await limiter.status(CLIENT, (), 3, ())).concurrent_in_use == 0


async def test_a_replaced_slot_that_expired_replaces_nothing(limiter: Limiter) -> None:
    gone = await limiter.admit(Admission(CLIENT, max_concurrent=1, hold_s=0.2))
    await asyncio.sleep(0.35)
    other = await limiter.admit(Admission(CLIENT, max_concurrent=1))
    # The expired slot no longer counts, so it cannot make room for its call.
    error = await refused(limiter, Admission(CLIENT, max_concurrent=1, replaces=gone))
    assert error.limit == CONCURRENCY_LIMIT
    await limiter.settle(other, 0)
    await limiter.admit(Admission(CLIENT, max_concurrent=1, replaces=gone))


def test_an_admission_replaces_only_its_own_clients_ticket() -> None:
    from imagegate_server.limits import Ticket

    theirs = Ticket("t", "team-b", 0, accounted=True)
    with pytest.raises(ValueError, match="its own client"):
        Admission(CLIENT, replaces=theirs)


async def test_the_spend_listing_names_every_client_that_spent_or_has_calls_in_flight(
    limiter: Limiter,
) -> None:
    budget = Budget("daily_budget", "day", DOLLAR)
    spent = await limiter.admit(Admission("team-b", budgets=(budget,), reserve_micros=300_000))
    await limiter.settle(spent, 250_000)
    await limiter.admit(Admission("team-a", budgets=(budget,), reserve_micros=100_000))
    await limiter.admit(Admission("team-a", max_concurrent=5))
    await limiter.settle(await limiter.admit(Admission("idle")), 0)  # nothing to show
    # A call with no limit at all still books its cost.
    await limiter.settle(await limiter.admit(Admission("unlimited")), 5)
    await limiter.admit(Admission("rates-only", rates=(requests(client="rates-only"),)))

    listing = await limiter.list_spend()
    assert [
        (c.client, c.spent_today_micros, c.spent_this_month_micros, c.reserved_micros, c.in_flight)
        for c in listing.clients
    ] == [
        ("rates-only", 0, 0, 0, 1),
        ("team-a", 0, 0, 100_000, 2),
        ("team-b", 250_000, 250_000, 0, 0),
        ("unlimited", 5, 5, 0, 0),
    ]
    assert listing.truncated is False
    assert abs(listing.as_of.timestamp() - time.time()) < 2

    first = await limiter.list_spend(limit=3)
    assert len(first.clients) == 3
    assert first.truncated is True
