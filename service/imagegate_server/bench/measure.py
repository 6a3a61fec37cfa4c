"""Closed-loop load: N workers each issue calls back to back; latencies and errors.

A closed loop (a fixed number of callers, each waiting for its answer) is what the
targets are phrased in ("at concurrency 64"), and it cannot overload the servers
the way an open-loop arrival rate on two shared cores would.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[None]]


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    peak_in_flight: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Successful calls per second over the whole phase."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_s(self, q: float) -> float:
        return percentile(self.latencies_s, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def error_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        # grpc.aio.AioRpcError: the status code names the failure.
        return f"grpc {code()}"
    return type(exc).__name__


async def closed_loop(call: Call, concurrency: int, calls: int, time_limit_s: float) -> LoadResult:
    """Run ``calls`` calls with ``concurrency`` callers, stopping early at ``time_limit_s``."""
    result = LoadResult()
    remaining = calls
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop_at = start + time_limit_s

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and loop.time() < stop_at:
            remaining -= 1
            began = time.perf_counter()
            try:
                await call()
            except Exception as exc:  # every failure is counted, none stops the run
                result.errors[error_name(exc)] += 1
            else:
                result.latencies_s.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = loop.time() - start
    return result


async def ramped(call: Call, count: int, ramp_s: float, batch: int = 100) -> LoadResult:
    """Start ``count`` calls spread evenly over ``ramp_s`` and wait for all of them.

    A ramp rather than one burst: thousands of simultaneous connects overflow a listen
    backlog (aiohttp's default is 128, the emulator's too), and the kernel's SYN
    retransmits (1 s, 2 s, 4 s, ...) then measure TCP, not the servers. With calls
    that last longer than the ramp, all of them are still in flight together;
    ``peak_in_flight`` says whether they were.
    """
    result = LoadResult()
    loop = asyncio.get_running_loop()
    start = loop.time()
    in_flight = 0

    async def one() -> None:
        nonlocal in_flight
        in_flight += 1
        result.peak_in_flight = max(result.peak_in_flight, in_flight)
        began = time.perf_counter()
        try:
            await call()
        except Exception as exc:
            result.errors[error_name(exc)] += 1
        else:
            result.latencies_s.append(time.perf_counter() - began)
        finally:
            in_flight -= 1

    batches = max(1, -(-count // batch))
    tasks: list[asyncio.Task[None]] = []
    for index in range(batches):
        size = min(batch, count - index * batch)
        tasks += [asyncio.create_task(one()) for _ in range(size)]
        await asyncio.sleep(ramp_s / batches)
    await asyncio.gather(*tasks)
    result.elapsed_s = loop.time() - start
    return result
