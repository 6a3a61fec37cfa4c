"""What a bench process uses, from /proc: its CPU seconds, its RSS, a phase's peak.

With ``--workers`` a gateway is a tree of processes (the supervisor and its workers),
so the CPU and RSS figures come summed over :func:`process_tree` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, all its threads (from
    /proc/PID/stat; 0.0 if it is gone). Kernel clock ticks: 10 ms each, usually."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name (which may hold spaces), from field 3 (state) on:
    # utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (a supervisor's workers and their children),
    from the parent pids in /proc; just ``[pid]`` when nothing descends from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:  # bounded: every pid is visited once (the kernel's tree has no cycles)
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` summed over :func:`process_tree`: with ``--workers``, the
    supervisor and every worker. A worker that exits during a phase takes its CPU time
    with it (its parent collects it only once it has waited for it), so a phase with a
    restart undercounts; the bench's phases have none."""
    return sum(cpu_seconds(p) for p in process_tree(pid))


def tree_rss_bytes(pid: int) -> int:
    """:func:`rss_bytes` summed over :func:`process_tree` (pages shared between the
    processes, such as the interpreter's, count once per process)."""
    return sum(rss_bytes(p) for p in process_tree(pid))


def rss_bytes(pid: int) -> int:
    """Current resident set size of a process, from /proc (0 if it is gone)."""
    return _status_field(pid, "VmRSS")


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS; False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_field(pid: int, name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class RssSampler:
    """Samples a process's RSS every ``interval_s`` while a phase runs; keeps the peak.

    A phase's peak can last less than a sample (a large answer's response and gRPC's
    copy of it are alive together for milliseconds), so for one process the sampler
    also resets the kernel's high-water mark on entry (``5 > /proc/PID/clear_refs``)
    and reads VmHWM on exit: the exact peak of the phase, where the kernel allows it.
    With ``tree`` it samples the sum over the process and the descendants it has on
    entry (a supervisor's workers; their peaks need not coincide, so no VmHWM), so
    that a sample reads a few files, not all of /proc.
    """

    def __init__(self, pid: int, interval_s: float = 0.05, tree: bool = False) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self._tree = tree
        self._pids = [pid]
        self._task: asyncio.Task[None] | None = None
        self._exact = False

    def _read(self) -> int:
        return sum(rss_bytes(p) for p in self._pids)

    async def __aenter__(self) -> RssSampler:
        self._pids = process_tree(self.pid) if self._tree else [self.pid]
        self._exact = not self._tree and _reset_peak(self.pid)
        self.peak = self._read()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak = max(self.peak, self._read())
        if self._exact:
            self.peak = max(self.peak, _status_field(self.pid, "VmHWM"))

    async def _run(self) -> None:
        # Bounded like every loop here: an hour of samples outlasts any scenario.
        for _ in range(int(3600 / self.interval_s)):
            # The read is a tiny procfs file: cheap enough inline on the loop.
            self.peak = max(self.peak, self._read())
            await asyncio.sleep(self.interval_s)
