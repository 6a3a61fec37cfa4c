"""A private ``redis-server`` for the tenancy scenario: a free loopback port, the
scenario's scratch directory, no persistence; stopped when the scenario ends.

The bench uses Debian's (or any) ``redis-server`` on ``PATH`` and never installs one:
without it, :func:`redis_server_binary` raises :class:`BenchUnavailable` with the
command that installs it, before any scenario starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from imagegate_server.bench.model import BenchUnavailable
from imagegate_server.bench.procs import START_TIMEOUT_S

INSTALL_HINT = "apt-get install -y --no-install-recommends redis-server"
_ATTEMPTS = 5  # a free port can be taken between the probe and redis-server's bind


@dataclass(frozen=True)
class RedisProcess:
    url: str
    """``redis://127.0.0.1:PORT/0``."""
    pid: int


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchUnavailable(
            "the tenancy scenario needs redis-server on PATH (it starts its own on "
            f"loopback), and there is none; install it, e.g. {INSTALL_HINT}"
        )
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _answers(port: int) -> bool:
    """True once the server replies +PONG to PING."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _started(binary: str, directory: Path) -> tuple[asyncio.subprocess.Process, int]:
    log = directory / "redis.log"
    for _ in range(_ATTEMPTS):
        port = _free_port()
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(log),
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline and process.returncode is None:
            if await _answers(port):
                return process, port
            await asyncio.sleep(0.05)
        await _stop(process)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"redis-server did not start on loopback:\n{tail}")


@contextlib.asynccontextmanager
async def running_redis(directory: Path) -> AsyncIterator[RedisProcess]:
    """A redis-server on 127.0.0.1, answering PING; stopped (SIGTERM) on exit."""
    binary = redis_server_binary()
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    process, port = await _started(binary, directory)
    try:
        yield RedisProcess(f"redis://127.0.0.1:{port}/0", process.pid)
    finally:
        await _stop(process)
