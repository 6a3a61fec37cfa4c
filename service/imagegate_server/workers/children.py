"""The supervisor's children: one slot each, kept running until the supervisor stops
(and how many workers ``auto`` means).

A worker that dies while serving is restarted (logged with its pid and exit
code), after a backoff that doubles while replacements keep dying young, so a
crash loop does not spin. A worker that dies before it ever served stops the
start-up instead: the same cause would kill every replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate_server.metrics import multiprocess

log = logging.getLogger("imagegate_server.workers")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
# A replacement that served this long was not part of a crash loop.
STABLE_AFTER_S = 30.0


def worker_count(workers: int | str) -> int:
    """``auto``: the CPUs this process may run on (its affinity, which container
    CPU sets restrict; ``os.cpu_count()`` where affinity is unknown)."""
    if workers != "auto":
        return int(workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ChildFailed(Exception):
    """A child exited before it ever reported that it serves."""

    def __init__(self, name: str, returncode: int) -> None:
        super().__init__(f"{name} exited with {_describe(returncode)} before serving")


@dataclass
class Slot:
    """One supervised child: the process now running in it and how to start another."""

    name: str
    index: int | None
    """A worker's index (also in its own log lines); None for the emulator."""
    module: str
    plan: Callable[[], bytes]
    stop_signal: int | None
    """Sent to stop the child; None: close its standard input instead."""
    stop_timeout_s: float
    on_ready: Callable[[Slot, dict[str, Any]], None]
    process: asyncio.subprocess.Process | None = None
    served: bool = False


async def keep_running(
    slot: Slot, stop: asyncio.Event, first_ready: asyncio.Future[None], metrics_directory: Path
) -> bool:
    """Run the slot's child, and a replacement of each that dies while serving, until
    ``stop``; ``first_ready`` resolves once one served (or fails with
    :class:`ChildFailed`). False if the last one ended its drain with a failure."""
    loop = asyncio.get_running_loop()
    backoff = FIRST_BACKOFF_S
    while not stop.is_set():
        started = loop.time()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            slot.module,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ, **{multiprocess.ENV: os.fspath(metrics_directory)}),
        )
        slot.process = process
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.write(slot.plan())
            await process.stdin.drain()
        report = await _first_line(process.stdout, stop)
        if report is not None:
            slot.on_ready(slot, report)
            slot.served = True
            if not first_ready.done():
                first_ready.set_result(None)
        code = await _until_exit(slot, process, stop)
        process.stdin.close()
        multiprocess.process_died(metrics_directory, process.pid)
        if stop.is_set():
            if code != 0:
                log.warning(
                    f"{slot.name} ended its drain with {_describe(code)}",
                    extra=_child(slot, process, exit_code=code),
                )
                return False
            return True
        if not slot.served:
            if not first_ready.done():
                first_ready.set_exception(ChildFailed(slot.name, code))
            return True
        backoff = FIRST_BACKOFF_S if loop.time() - started > STABLE_AFTER_S else backoff
        log.error(
            f"{slot.name} exited with {_describe(code)}; restarting it",
            extra=_child(slot, process, exit_code=code, restart_in_s=backoff),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)
    return True


async def _until_exit(slot: Slot, process: asyncio.subprocess.Process, stop: asyncio.Event) -> int:
    exited = asyncio.ensure_future(process.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not exited.done():
        if slot.stop_signal is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(slot.stop_signal)
        elif process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(exited), slot.stop_timeout_s)
        except TimeoutError:
            log.error(f"{slot.name} did not stop in time: killing it", extra=_child(slot, process))
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return await exited


async def _first_line(stream: asyncio.StreamReader, stop: asyncio.Event) -> dict[str, Any] | None:
    """The child's "serving" report, or None if it exited (or we stop) first."""
    reading = asyncio.ensure_future(stream.readline())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not reading.done():
        reading.cancel()
        return None
    line = reading.result()
    if not line:
        return None
    report: dict[str, Any] = json.loads(line)
    return report


def _child(slot: Slot, process: asyncio.subprocess.Process, **fields: object) -> dict[str, object]:
    extra: dict[str, object] = {"pid": process.pid, **fields}
    if slot.index is not None:
        extra["worker"] = slot.index
    return extra


def pid(slot: Slot) -> int | None:
    """The pid of the slot's child, if one was started."""
    return slot.process.pid if slot.process is not None else None


def _describe(returncode: int) -> str:
    """An exit as the log tells it: ``exit code 1``, ``signal SIGKILL``."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"
