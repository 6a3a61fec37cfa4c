"""The emulator and the gateway, each in its own process, plus RSS sampling.

Separate processes keep the measurement honest: the gateway's RSS is its own, and
neither server's event loop is slowed by the load generator's (they still share
the machine's CPUs, which the report says).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

API_KEY = "sk-bench-0123456789"
START_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"listening on (http://\S+)")
_PORT = re.compile(r"(\d+)")


@dataclass
class Stack:
    """A running emulator and gateway: where to reach them and the gateway's pid."""

    emulator_url: str
    """The emulator's base URL, ``http://127.0.0.1:PORT/v1``."""
    gateway_target: str
    """The gateway's gRPC target, ``127.0.0.1:PORT``."""
    gateway_pid: int
    emulator_pid: int


@dataclass(frozen=True)
class StackConfig:
    latency_ms: float = 0.0
    cached_renders: bool = True
    real_sizes: bool = False
    """``imagegate emulator --real-sizes``: answers as large, encoded, as OpenAI's."""
    gateway_env: dict[str, str] = field(default_factory=dict)
    """Extra ``IMAGEGATE_*`` settings for the gateway."""
    workers: int | None = None
    """``imagegate serve --workers N``; None: one process, no supervisor."""


def _spawn(
    argv: Sequence[str],
    log: Path,
    env: dict[str, str],
    module: str = "imagegate_server.bench.child",
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", module, *argv]
    with log.open("wb") as out:
        # The child's output goes to a file, never a pipe nobody drains.
        return subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            command, stdout=out, stderr=subprocess.STDOUT, env=env
        )


async def _wait_for(path: Path, pattern: re.Pattern[str], proc: subprocess.Popen[bytes]) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        match = pattern.search(_read(path))
        if match:
            return match.group(1)
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.05)
    tail = _read(path)[-2000:]
    raise RuntimeError(f"process {proc.args!r} did not start:\n{tail}")


def _read(path: Path) -> str:
    # A small log file on local disk: reading it inline does not stall the loop.
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.asynccontextmanager
async def running_emulator(config: StackConfig, workdir: Path) -> AsyncIterator[tuple[str, int]]:
    """``imagegate emulator`` in its own process: its base URL and pid."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    argv = ["emulator", "--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY]
    argv += ["--latency-ms", str(config.latency_ms)]
    if config.cached_renders:
        argv.append("--cached-renders")
    if config.real_sizes:
        argv.append("--real-sizes")
    log = workdir / "emulator.log"
    emulator = _spawn(argv, log, _clean_env())
    try:
        url = await _wait_for(log, _LISTENING, emulator)
        yield url, emulator.pid
    finally:
        await asyncio.to_thread(_stop, emulator)


@contextlib.asynccontextmanager
async def running_gateways(
    emulator_url: str,
    envs: dict[str, dict[str, str]],
    workdir: Path,
    workers: int | None = None,
) -> AsyncIterator[dict[str, tuple[str, int]]]:
    """``imagegate serve`` processes pointed at the emulator, one per entry of
    ``envs`` (name -> extra ``IMAGEGATE_*`` settings; the name keeps their files
    apart), started together: each one's gRPC target and pid, by name. With
    ``workers`` each is ``serve --workers N`` and the pid is its supervisor's (the
    port file is written once every worker serves); :func:`tree_cpu_seconds` and
    :func:`tree_rss_bytes` then count the workers too."""
    spawned: dict[str, tuple[Path, subprocess.Popen[bytes]]] = {}
    try:
        for name, extra in envs.items():
            port_file = workdir / f"{name}.port"
            await asyncio.to_thread(port_file.unlink, missing_ok=True)
            env = dict(
                _clean_env(),
                IMAGEGATE_OPENAI_API_KEY=API_KEY,
                IMAGEGATE_OPENAI_BASE_URL=emulator_url,
                IMAGEGATE_SHUTDOWN_GRACE_S="0",
                **extra,
            )
            argv = ["serve", "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)]
            if workers is not None:
                argv += ["--workers", str(workers)]
            spawned[name] = port_file, _spawn(argv, workdir / f"{name}.log", env)
        ports = await asyncio.gather(
            *(_wait_for(port_file, _PORT, proc) for port_file, proc in spawned.values())
        )
        yield {
            name: (f"127.0.0.1:{port}", proc.pid)
            for (name, (_, proc)), port in zip(spawned.items(), ports, strict=True)
        }
    finally:
        for _, proc in spawned.values():
            await asyncio.to_thread(_stop, proc)


@contextlib.asynccontextmanager
async def running_gateway(
    emulator_url: str,
    extra_env: dict[str, str],
    workdir: Path,
    name: str = "gateway",
    workers: int | None = None,
) -> AsyncIterator[tuple[str, int]]:
    """One gateway of :func:`running_gateways`: its gRPC target and pid."""
    async with running_gateways(emulator_url, {name: extra_env}, workdir, workers) as gateways:
        yield gateways[name]


@contextlib.asynccontextmanager
async def running_stack_floor(emulator_url: str, workdir: Path) -> AsyncIterator[tuple[str, int]]:
    """The bare grpc.aio + httpx proxy (:mod:`.stack_floor`): its target and pid."""
    port_file = workdir / "stack-floor.port"
    argv = [emulator_url, API_KEY, str(port_file)]
    proc = _spawn(
        argv, workdir / "stack-floor.log", _clean_env(), "imagegate_server.bench.stack_floor"
    )
    try:
        port = await _wait_for(port_file, _PORT, proc)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        await asyncio.to_thread(_stop, proc)


@contextlib.asynccontextmanager
async def running_stack(config: StackConfig, workdir: Path) -> AsyncIterator[Stack]:
    """Start the emulator, then the gateway pointed at it; stop both on exit."""
    async with (
        running_emulator(config, workdir) as (url, emulator_pid),
        running_gateways(url, {"gateway": config.gateway_env}, workdir, config.workers) as gateways,
    ):
        target, gateway_pid = gateways["gateway"]
        yield Stack(url, target, gateway_pid, emulator_pid)


def _clean_env() -> dict[str, str]:
    """This process's environment without any imagegate or OpenTelemetry setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGATE_", "OTEL_"))}


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
