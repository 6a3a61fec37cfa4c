"""The bench's RSS sampler sees a peak shorter than its sampling interval, in a real process."""

from __future__ import annotations

import asyncio
import sys

from imagegate_server.bench.usage import RssSampler, rss_bytes

MIB = 1024 * 1024
# Waits for a line, holds 64 MiB for a few milliseconds, frees them, says so, then waits.
_CHILD = """
import sys, time
sys.stdin.readline()
held = b"x" * (64 << 20)
time.sleep(0.005)
del held
print("freed", flush=True)
sys.stdin.readline()
"""


async def test_a_peak_between_two_samples_is_still_the_phases_peak() -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        await asyncio.sleep(0.2)  # the interpreter has started
        before = rss_bytes(child.pid)
        # One sample at entry and one at exit: the 64 MiB come and go in between.
        async with RssSampler(child.pid, interval_s=3600) as rss:
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            assert await asyncio.wait_for(child.stdout.readline(), 30) == b"freed\n"
        assert rss_bytes(child.pid) < before + 16 * MIB  # gone again: only a peak saw it
        assert rss.peak >= before + 60 * MIB
    finally:
        child.kill()
        await child.wait()
