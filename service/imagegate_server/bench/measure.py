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


async def all_at_once(call: Call, count: int) -> LoadResult:
    """Start ``count`` calls together and wait for all: how many can be held in flight."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one() -> None:
        began = time.perf_counter()
        try:
            await call()
        except Exception as exc:
            result.errors[error_name(exc)] += 1
        else:
            result.latencies_s.append(time.perf_counter() - began)

    await asyncio.gather(*(one() for _ in range(count)))
    result.elapsed_s = loop.time() - start
    return result
