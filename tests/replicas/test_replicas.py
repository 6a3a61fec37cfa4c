"""Three ``imagegate serve`` processes on one Redis and one emulator: the limits and
spend of a client hold across replicas, a replica that dies gives back what it held,
and a Redis outage follows the configured policy.

Real parts only: gateway processes started as an operator starts them, a real
redis-server on a loopback port, the emulator in the test's process (its journal
says what really went upstream). Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile
from imagegate.v1 import images_service_pb2 as pb
from limits.redis_support import RedisServer
from replica_support import (
    GENERATIONS,
    OPENAI_KEY,
    Replica,
    SharedRedis,
    assert_never_logged,
    bearer,
    error_reason,
    generation,
    quota_id,
    replicas,
    split,
    status_code,
    token_secret,
    wait_for,
)

from imagegate_server.emulator import Emulator

pytestmark = pytest.mark.slow

OK = grpc.StatusCode.OK
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


async def _warm_up(fleet: list[Replica], token: str, emulator: Emulator) -> None:
    """One call per replica of an unlimited client: Redis connections, its scripts and
    the upstream connection exist before the measured part starts."""
    for replica in fleet:
        await replica.create(generation("warm-up"), bearer(token))
    emulator.reset()


async def test_a_burst_over_three_replicas_admits_images_per_minute_within_5_percent(
    tmp_path: Path, shared_redis: SharedRedis, emulator: Emulator, clients: ClientsFile
) -> None:
    limit = 60
    token = clients.add("burst", images_per_minute=limit)
    warm = clients.add("warm")
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=shared_redis.url, redis_prefix=shared_redis.prefix,
    ) as fleet:  # fmt: skip
        await _warm_up(fleet, warm, emulator)
        # Sent in turn to each replica, each of which alone is offered 1.2 x the limit
        # (calls of n = 1, 2 and 3): a limit counted per replica would admit about
        # three times it.
        calls = [(fleet[i % 3], 1 + (i // 3) % 3) for i in range(3 * 36)]
        offered = sum(n for _, n in calls)
        assert offered == 3 * 72
        outcomes = await asyncio.gather(
            *(
                replica.create(generation(f"burst {i}", n), bearer(token))
                for i, (replica, n) in enumerate(calls)
            ),
            return_exceptions=True,
        )
        assert_never_logged(fleet, [token, token_secret(token)])

    answers, refusals = split(outcomes)
    answered = sum(len(answer.result.images) for answer in answers)
    for error in refusals:
        assert error.code() == RESOURCE_EXHAUSTED, error
        assert quota_id(error) == "images_per_minute"
    upstream = emulator.journal.by_path(GENERATIONS)
    assert all(entry.status == 200 for entry in upstream)
    journaled = sum(entry.json["n"] for entry in upstream)
    assert journaled == answered
    # GCRA admits the burst (the limit) at once, then one image per 60 s / limit: the
    # calls that went upstream were admitted over this window.
    window_s = max(e.started_at for e in upstream) - min(e.started_at for e in upstream)
    by_replica = [
        sum(len(o.result.images) for (r, _), o in zip(calls, outcomes, strict=True)
            if r is replica and isinstance(o, pb.CreateImageResponse))
        for replica in fleet
    ]  # fmt: skip
    print(
        f"\n{shared_redis.shape}: {answered} of {offered} images admitted over {window_s:.2f} s "
        f"(limit {limit}), "
        f"by replica: {by_replica}"
    )
    assert answered <= limit + int(window_s * limit / 60)
    assert 0.95 * limit <= answered <= 1.05 * limit


async def test_concurrent_calls_on_three_replicas_spend_a_budget_exactly(
    tmp_path: Path, shared_redis: SharedRedis, emulator: Emulator, clients: ClientsFile
) -> None:
    # ~5,900 micro-dollars reserved per image, a little less spent, 21 images a wave
    # (~125,000): a budget of 1.6 waves, so the second wave's reservations compete
    # for what the first left.
    token = clients.add("spender", daily_budget_usd="0.20")
    warm = clients.add("warm")
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=shared_redis.url, redis_prefix=shared_redis.prefix,
    ) as fleet:  # fmt: skip
        await _warm_up(fleet, warm, emulator)
        # Held upstream a little, so that reservations of all replicas overlap.
        emulator.set_faults("delay;ms=200")
        waves: list[list[object]] = []
        for wave in range(4):
            waves.append(
                await asyncio.gather(
                    *(
                        # Prompts of different lengths, and n: costs vary by call.
                        replica.create(
                            generation("fox " * (1 + wave * 15 + i * 3 + replica.index), 1 + i % 2),
                            bearer(token),
                        )
                        for replica in fleet
                        for i in range(5)
                    ),
                    return_exceptions=True,
                )
            )
        quotas = [await replica.quota(bearer(token)) for replica in fleet]
        assert_never_logged(fleet, [token, token_secret(token)])

    outcomes = [outcome for wave in waves for outcome in wave]
    answers, refusals = split(outcomes)
    costs = [answer.result.cost.usd_micros for answer in answers]
    refused = len(refusals)
    for error in refusals:
        assert error.code() == RESOURCE_EXHAUSTED, error
        assert quota_id(error) == "daily_budget"
    print(f"\n{len(costs)} calls admitted, {refused} refused, {sum(costs)} micro-USD spent")
    assert refused > 0, "the budget was never reached"
    assert any(
        {status_code(outcome) for outcome in wave} == {OK, RESOURCE_EXHAUSTED} for wave in waves
    ), "no wave of concurrent calls competed for the last of the budget"
    assert len(set(costs)) > 1 and all(cost > 0 for cost in costs)
    assert len(emulator.journal.by_path(GENERATIONS)) == len(costs)
    for quota in quotas:  # every replica tells the same story
        assert quota.client == "spender"
        assert quota.spent_today_usd_micros == sum(costs)
        assert quota.reserved_usd_micros == 0
        (budget,) = quota.budgets
        assert budget.name == "daily_budget"
        assert budget.limit_usd_micros == 200_000
        assert (budget.spent_usd_micros, budget.reserved_usd_micros) == (sum(costs), 0)


async def test_a_killed_replica_frees_its_slots_and_reservations_within_their_hold(
    tmp_path: Path, redis_server: RedisServer, emulator: Emulator, clients: ClientsFile
) -> None:
    max_concurrent, timeout_s, margin_s = 4, 4.0, 1.0
    hold_s = timeout_s + margin_s
    token = clients.add("held", max_concurrent=max_concurrent, daily_budget_usd="1.00")
    warm = clients.add("warm")
    me = bearer(token)
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=redis_server.url, upstream_timeout_s=str(timeout_s),
        limit_hold_margin_s=str(margin_s),
    ) as fleet:  # fmt: skip
        doomed, survivor, other = fleet
        await _warm_up(fleet, warm, emulator)
        emulator.set_faults("delay;ms=30000")  # held upstream until the replica dies
        before = time.time()
        in_flight = [
            asyncio.create_task(doomed.create(generation(f"doomed {i}"), me))
            for i in range(max_concurrent)
        ]
        await emulator.journal.wait_for(
            lambda entries: len(entries) == max_concurrent, timeout_s=30
        )
        admitted_by = time.time()  # every one was admitted before it went upstream
        doomed.kill()
        for outcome in await asyncio.gather(*in_flight, return_exceptions=True):
            assert status_code(outcome) == grpc.StatusCode.UNAVAILABLE
        emulator.set_faults("")

        # Nobody settled them: another replica still sees them held, and refuses.
        quota = await survivor.quota(me)
        assert quota.concurrency.in_use == max_concurrent
        reserved = quota.reserved_usd_micros
        assert reserved > 0
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await survivor.create(generation("too many"), me)
        assert refused.value.code() == RESOURCE_EXHAUSTED
        assert quota_id(refused.value) == "concurrent_calls"

        async def freed() -> bool:
            quota = await other.quota(me)
            return quota.concurrency.in_use == 0 and quota.reserved_usd_micros == 0

        freed_at = await wait_for(freed, timeout_s=hold_s + 30, what="the slots to expire")
        print(f"\nfreed {freed_at - before:.2f} s after the calls were sent (hold {hold_s} s)")
        assert freed_at <= admitted_by + hold_s + 2.0, "held past the hold: leaked"
        assert freed_at >= before + hold_s - 0.25, "freed early: a live call would lose it"
        quota = await other.quota(me)
        assert quota.spent_today_usd_micros == 0  # never answered: nothing booked

        # The client has its whole concurrency again, on the replicas still alive.
        emulator.reset()
        emulator.set_faults("delay;ms=1500")
        held = [
            asyncio.create_task((survivor, other)[i % 2].create(generation(f"again {i}"), me))
            for i in range(max_concurrent)
        ]
        await emulator.journal.wait_for(
            lambda entries: len(entries) == max_concurrent, timeout_s=30
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await other.create(generation("one more"), me)
        assert quota_id(refused.value) == "concurrent_calls"
        answers = await asyncio.gather(*held)
        emulator.set_faults("")
        quota = await survivor.quota(me)
        assert (quota.concurrency.in_use, quota.reserved_usd_micros) == (0, 0)
        assert quota.spent_today_usd_micros == sum(a.result.cost.usd_micros for a in answers)
        assert_never_logged(fleet, [token, token_secret(token)])


def _outage_lines(replica: Replica) -> tuple[int, int]:
    records = replica.records()
    down = [
        r
        for r in records
        if r.get("level") == "WARNING" and r.get("msg", "").startswith("limits store unreachable")
    ]
    up = [r for r in records if r.get("msg", "").startswith("limits store working again")]
    return len(down), len(up)


async def test_redis_stopped_mid_test_budgets_fail_closed_rates_fail_open_then_resume(
    tmp_path: Path, redis_server: RedisServer, emulator: Emulator, clients: ClientsFile
) -> None:
    budgeted = bearer(clients.add("budgeted", daily_budget_usd="10"))
    rated = bearer(clients.add("rated", requests_per_minute=2))
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=redis_server.url,
    ) as fleet:  # fmt: skip
        for replica in fleet:
            await replica.create(generation("before"), budgeted)
        await fleet[0].create(generation("before"), rated)
        assert [_outage_lines(replica) for replica in fleet] == [(0, 0)] * 3

        redis_server.stop()
        for replica in fleet:
            for attempt in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await replica.create(generation(f"budget {attempt}"), budgeted)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert error_reason(caught.value) == "LIMITER_UNAVAILABLE"
            # 9 calls against 2 requests per minute: uncounted, so all served.
            for attempt in range(3):
                answer = await replica.create(generation(f"rate {attempt}"), rated)
                assert len(answer.result.images) == 1
        assert [_outage_lines(replica) for replica in fleet] == [(1, 0)] * 3

        redis_server.start()  # same port, empty (no persistence)
        for replica in fleet:

            async def served(replica: Replica = replica) -> bool:
                try:
                    await replica.create(generation("after"), budgeted)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    return False
                return True

            await wait_for(served, timeout_s=30, what="service to resume", interval_s=0.2)
        # Rates are counted again: the fresh Redis allows the burst of 2, then refuses.
        await fleet[1].create(generation("counted"), rated)
        await fleet[2].create(generation("counted"), rated)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await fleet[0].create(generation("counted"), rated)
        assert quota_id(caught.value) == "requests_per_minute"
        # One line when the outage started and one when it ended, per replica: not
        # one per call.
        assert [_outage_lines(replica) for replica in fleet] == [(1, 1)] * 3


async def test_no_token_key_or_redis_password_reaches_any_replicas_log(
    tmp_path: Path, emulator: Emulator, clients: ClientsFile
) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    password = "redis-SECRET-pw-0123456789"
    good = clients.add("team-a", requests_per_minute=3, daily_budget_usd="1")
    revoked = clients.add("team-a")
    token_id, secret = good.removeprefix("igk_").split("_", 1)
    wrong = [
        f"igk_{token_id}_{'A' * len(secret)}",  # a wrong secret for a real id
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # a bad checksum
        f"{good}x",  # the real token, one character longer
    ]
    with RedisServer(directory, password=password) as redis_server:
        async with replicas(
            tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
            redis_url=redis_server.url, log_level="DEBUG", clients_reload_s="0.2",
        ) as fleet:  # fmt: skip
            for replica in fleet:
                await replica.create(generation("served"), bearer(good))
                await replica.quota(bearer(revoked))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await fleet[0].create(generation("over"), bearer(good))
            assert caught.value.code() == RESOURCE_EXHAUSTED
            for replica, token in zip(itertools.cycle(fleet), wrong, strict=False):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await replica.create(generation("wrong"), bearer(token))
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            clients.revoke("team-a", revoked)
            for replica in fleet:

                async def refused(replica: Replica = replica) -> bool:
                    try:
                        await replica.quota(bearer(revoked))
                    except grpc.aio.AioRpcError as error:
                        return error.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False

                await wait_for(refused, timeout_s=30, what="the revocation to reach a replica")
            redis_server.stop()  # an outage's lines must not quote the URL either
            for replica in fleet:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await replica.create(generation("outage"), bearer(good))
                assert error_reason(caught.value) == "LIMITER_UNAVAILABLE"
            assert all(_outage_lines(replica)[0] == 1 for replica in fleet)
            secrets = [good, revoked, *wrong, secret, token_secret(revoked), OPENAI_KEY, password]
            assert_never_logged(fleet, secrets)
            # The callers are named by client, and nothing of the token goes upstream.
            served = [
                r
                for replica in fleet
                for r in replica.records()
                if r.get("msg") == "rpc finished" and r.get("rpc") == "CreateImage"
            ]
            assert {r.get("client") for r in served if r.get("code") == "OK"} == {"team-a"}
    journal = str([entry.to_json() for entry in emulator.journal.entries])
    assert not any(text in journal for text in secrets)
