"""The one emulator of a supervised emulator-mode gateway:
``python -m imagegate_server.workers.emulator``, started by the supervisor.

Reads an :class:`~imagegate_server.workers.plan.EmulatorPlan` from standard input,
serves on 127.0.0.1 with the plan's private key, prints its base URL on standard
output, and stops when standard input closes. It ignores SIGTERM and SIGINT (a
terminal's Ctrl-C reaches the whole process group): draining workers still need
it, and the supervisor closes the pipe once the last worker has finished.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from imagegate_server import logs
from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.workers.plan import EmulatorPlan, ready_line
from imagegate_server.workers.stdin import open_plan_pipe, wait_for_eof


async def _main() -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    pipe = await open_plan_pipe()
    plan = EmulatorPlan.parse(await pipe.readline())
    logs.configure(plan.log_level)
    emulator = Emulator(
        EmulatorConfig(
            api_key=plan.api_key, cached_renders=plan.cached_renders, real_sizes=plan.real_sizes
        )
    )
    base_url = await emulator.start("127.0.0.1", plan.port)
    stop = asyncio.Event()
    orphaned = asyncio.create_task(wait_for_eof(pipe, stop))
    sys.stdout.buffer.write(ready_line(base_url=base_url))
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        orphaned.cancel()
        await emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
