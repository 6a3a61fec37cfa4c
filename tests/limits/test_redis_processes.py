"""Several worker processes (stand-ins for replicas) on one real redis-server."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from redis_support import RedisServer

from imagegate_server.limits import (
    CONCURRENCY_LIMIT,
    Admission,
    Budget,
    LimitRefused,
    RateLimit,
    RedisLimiter,
)

WORKER = Path(__file__).with_name("limit_worker.py")
PROCESSES = 3

pytestmark = pytest.mark.slow


@asynccontextmanager
async def workers(
    mode: str, configs: list[dict[str, Any]]
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Start one worker per config, wait until all are ready, then tell them to go."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), mode, json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for config in configs
    ]  # fmt: skip
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.strip() == b"ready", line
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def result(process: asyncio.subprocess.Process, timeout_s: float = 60) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
    answer: dict[str, Any] = json.loads(line)
    return answer


async def test_replicas_hammering_one_client_admit_within_5_percent_of_its_limit(
    redis_server: RedisServer, prefix: str
) -> None:
    images_per_minute, requests_per_minute = 300, 1000
    base = {
        "url": redis_server.url,
        "prefix": prefix,
        "client": "hammered",
        "images": images_per_minute,
        "requests": requests_per_minute,
        "tasks": 20,
        # +-5 % of a per-minute limit is 3 s of refill: the burst must end well within.
        "duration_s": 1.5,
        "max_calls_per_task": 3000,
    }
    async with workers("hammer", [{**base, "seed": i} for i in range(PROCESSES)]) as running:
        results = [await result(process) for process in running]

    images = sum(r["admitted_images"] for r in results)
    calls = sum(r["admitted_calls"] for r in results)
    elapsed = max(r["last_replied"] for r in results) - min(r["first_sent"] for r in results)
    # GCRA with burst = limit admits at most the burst plus one unit per T elapsed.
    images_bound = images_per_minute + int(elapsed / (60 / images_per_minute))
    requests_bound = requests_per_minute + int(elapsed / (60 / requests_per_minute))
    print(
        f"\n{sum(r['calls'] for r in results)} calls in {elapsed:.2f} s: {images} images admitted"
    )
    assert sum(r["refused"] for r in results) > 0, "the limit was never reached"
    assert images <= images_bound
    assert images_bound <= 1.05 * images_per_minute, "the test ran too long to mean +-5 %"
    assert images >= 0.95 * images_per_minute
    assert calls <= requests_bound


async def test_replicas_spending_one_budget_end_exact_to_the_micro_dollar(
    redis_server: RedisServer, prefix: str
) -> None:
    limit, reserve, actual = 10_000_000, 250_000, 167_001
    base = {
        "url": redis_server.url,
        "prefix": prefix,
        "client": "spender",
        "limit_micros": limit,
        "reserve_micros": reserve,
        "actual_micros": actual,
        "tasks": 20,
        "rounds": 5,
    }
    async with workers("budget", [{**base, "seed": i} for i in range(PROCESSES)]) as running:
        results = [await result(process) for process in running]

    admitted = sum(r["admitted"] for r in results)
    assert sum(r["refused"] for r in results) > 0, "the budget was never reached"
    # No refusal is possible before 40 reservations of $0.25 fill $10.
    assert admitted >= limit // reserve
    limiter = RedisLimiter.from_url(redis_server.url, prefix=prefix)
    try:
        budget = Budget("daily_budget", "day", limit)
        status = await limiter.status("spender", (), None, (budget,))
    finally:
        await limiter.aclose()
    assert status.spent_today_micros == admitted * actual
    assert status.spent_today_micros <= limit
    assert status.reserved_micros == 0
    assert status.concurrent_in_use == 0


async def test_a_killed_replica_frees_its_slots_and_reservations_within_hold_s(
    redis_server: RedisServer, redis_limiter: RedisLimiter, prefix: str
) -> None:
    hold_s, calls, reserve = 2.0, 4, 200_000
    budget = Budget("daily_budget", "day", calls * reserve)
    config = {
        "url": redis_server.url,
        "prefix": prefix,
        "client": "doomed",
        "limit_micros": budget.limit_micros,
        "reserve_micros": reserve,
        "calls": calls,
        "hold_s": hold_s,
    }
    async with workers("hold", [config]) as (process,):
        held = await result(process)
        assert held["held"] == calls
        status = await redis_limiter.status("doomed", (), calls, (budget,))
        assert (status.concurrent_in_use, status.reserved_micros) == (calls, calls * reserve)
        call = Admission("doomed", max_concurrent=calls, budgets=(budget,), reserve_micros=1)
        with pytest.raises(LimitRefused) as refused:
            await redis_limiter.admit(call)
        assert refused.value.limit in (CONCURRENCY_LIMIT, "daily_budget")
        process.send_signal(signal.SIGKILL)
        await process.wait()

    expires_at = held["admitted_at"] + hold_s
    while True:
        status = await redis_limiter.status("doomed", (), calls, (budget,))
        if status.concurrent_in_use == 0 and status.reserved_micros == 0:
            break
        assert time.time() < expires_at + 1.0, f"still held after hold_s: {status}"
        await asyncio.sleep(0.05)
    assert time.time() >= expires_at - 0.5, "freed before hold_s: a live call would lose its slot"
    full = Admission("doomed", max_concurrent=calls, budgets=(budget,), reserve_micros=reserve)
    for _ in range(calls):
        assert (await redis_limiter.admit(full)).accounted


async def test_calls_of_one_client_from_many_tasks_never_exceed_its_concurrency(
    redis_limiter: RedisLimiter,
) -> None:
    in_flight = peak = admitted = 0

    async def call(i: int) -> None:
        nonlocal in_flight, peak, admitted
        rate = RateLimit("requests_per_minute", 100_000, 100_000, 1, "busy")
        try:
            ticket = await redis_limiter.admit(Admission("busy", rates=(rate,), max_concurrent=5))
        except LimitRefused:
            return
        admitted += 1
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005 * (i % 3))
        in_flight -= 1
        await redis_limiter.settle(ticket, 0)

    await asyncio.gather(*(call(i) for i in range(300)))
    assert peak <= 5
    assert admitted >= 5
