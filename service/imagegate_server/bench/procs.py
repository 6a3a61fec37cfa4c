"""The emulator and the gateway, each in its own process (what they use: :mod:`.usage`).

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
    emulator_args: tuple[str, ...] = ()
    """Further ``imagegate emulator`` options (``--azure``, ...)."""


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
async def running_emulator(
    config: StackConfig, workdir: Path, name: str = "emulator"
) -> AsyncIterator[tuple[str, int]]:
    """``imagegate emulator`` in its own process: its base URL and pid (``name``
    keeps its log apart from other emulators')."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    argv = ["emulator", "--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY]
    argv += ["--latency-ms", str(config.latency_ms)]
    if config.cached_renders:
        argv.append("--cached-renders")
    if config.real_sizes:
        argv.append("--real-sizes")
    argv += config.emulator_args
    log = workdir / f"{name}.log"
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
                # Each gateway's local database of its own, in the run's directory.
                IMAGEGATE_DATA_DIR=str(workdir / f"{name}.data"),
                # Gateways run side by side: each its own free link port.
                IMAGEGATE_STORE_HTTP_PORT="0",
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
