"""A worker process for the multi-process limiter tests (a stand-in for a replica).

    python limit_worker.py MODE CONFIG_JSON

It prints ``ready`` once connected, waits for ``go`` on stdin (so all workers start
together), runs, and prints one JSON line with what it saw. Loops are bounded in
count and time. Modes:

- ``hammer``: tasks call admit as fast as they can against one client's rates
- ``budget``: tasks reserve, wait a little, settle, against one budget
- ``hold``: admit some calls, report, then hang (the test kills the process)
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from imagegate_server.limits import (
    Admission,
    Budget,
    LimitRefused,
    RateLimit,
    RedisLimiter,
)


def _rates(config: dict[str, Any], n: int) -> tuple[RateLimit, ...]:
    client = config["client"]
    return (
        RateLimit("requests_per_minute", config["requests"], config["requests"], 1, client),
        RateLimit("images_per_minute", config["images"], config["images"], n, client),
    )


async def hammer(limiter: RedisLimiter, config: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + config["duration_s"]
    totals = {"calls": 0, "admitted_calls": 0, "admitted_images": 0, "refused": 0}
    first_sent = time.time()

    async def task(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(config["max_calls_per_task"]):
            if time.monotonic() >= deadline:
                return
            n = rng.choice((1, 2, 4))
            totals["calls"] += 1
            try:
                ticket = await limiter.admit(Admission(config["client"], rates=_rates(config, n)))
            except LimitRefused:
                totals["refused"] += 1
                continue
            assert ticket.accounted
            totals["admitted_calls"] += 1
            totals["admitted_images"] += n
            await limiter.settle(ticket, 0)

    await asyncio.gather(*(task(config["seed"] * 1000 + i) for i in range(config["tasks"])))
    return {**totals, "first_sent": first_sent, "last_replied": time.time()}


async def budget(limiter: RedisLimiter, config: dict[str, Any]) -> dict[str, Any]:
    caps = (Budget("daily_budget", "day", config["limit_micros"]),)
    totals = {"admitted": 0, "refused": 0}

    async def task(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(config["rounds"]):
            call = Admission(
                config["client"], budgets=caps, reserve_micros=config["reserve_micros"]
            )
            try:
                ticket = await limiter.admit(call)
            except LimitRefused:
                totals["refused"] += 1
                await asyncio.sleep(rng.uniform(0, 0.01))
                continue
            totals["admitted"] += 1
            await asyncio.sleep(rng.uniform(0, 0.02))
            await limiter.settle(ticket, config["actual_micros"])

    await asyncio.gather(*(task(config["seed"] * 1000 + i) for i in range(config["tasks"])))
    return totals


async def hold(limiter: RedisLimiter, config: dict[str, Any]) -> dict[str, Any]:
    caps = (Budget("daily_budget", "day", config["limit_micros"]),)
    call = Admission(
        config["client"],
        max_concurrent=config["calls"],
        budgets=caps,
        reserve_micros=config["reserve_micros"],
        hold_s=config["hold_s"],
    )
    tickets = [await limiter.admit(call) for _ in range(config["calls"])]
    return {"held": len(tickets), "admitted_at": time.time()}


async def main(mode: str, config: dict[str, Any]) -> None:
    limiter = RedisLimiter.from_url(config["url"], prefix=config["prefix"])
    await limiter.status(config["client"], (), None, ())  # connected and scripts loaded
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        return
    run = {"hammer": hammer, "budget": budget, "hold": hold}[mode]
    print(json.dumps(await run(limiter, config)), flush=True)
    if mode == "hold":
        await asyncio.sleep(600)  # holding its calls until killed
    await limiter.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
