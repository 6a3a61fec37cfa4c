"""``imagegate serve`` as a real process: started as an operator starts it (``--host
127.0.0.1 --port-file``), waited for with bounded waits, its stderr JSON log lines
collected, and killed when the test ends, whatever happened."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Two shared cores and several agents: a worker's interpreter may take seconds to start.
START_TIMEOUT_S = 90.0
# ``python -m imagegate_server.cli``: this interpreter's, whatever is on PATH.
MODULE_COMMAND = (sys.executable, "-m", "imagegate_server.cli")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any IMAGEGATE_*, PROMETHEUS_* or OPENAI_* setting
    (none of the developer's own may leak into the process), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEGATE_", "PROMETHEUS_", "OPENAI_"))
    }
    env.update(extra)
    return env


class Serve:
    """``imagegate serve ARGS`` in its own process, its stderr collected line by line.

    The collecting is a thread's, so neither a sync nor an async test blocks on it;
    the waits here poll with ``time.sleep``: async tests use ``await serving()``
    (or ``asyncio.to_thread``) so that their loop keeps running meanwhile.
    """

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        cwd: Path,
        *,
        command: Sequence[str] = MODULE_COMMAND,
    ) -> None:
        self.port_file = cwd / "port"
        # The result store's link port: a free one unless the test says otherwise (its
        # fixed default would collide between gateways a test runs side by side).
        env = {"IMAGEGATE_STORE_HTTP_PORT": "0", **env}
        self.process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port-file", str(self.port_file),
             *args],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (other lines, such as a one-line error, skipped)."""
        with self._lock:
            lines = list(self.lines)
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_for_record(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = START_TIMEOUT_S
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.records():
                if match(record):
                    return record
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no such log line; the process logged: {self.lines}")

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> int:
        """The port from the port file, once it is written (a whole line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port_file.exists() and self.port_file.read_text().endswith("\n"):
                return int(self.port_file.read_text())
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}: {self.lines}")
            time.sleep(0.05)
        raise AssertionError(f"serve did not write its port file: {self.lines}")

    async def serving(self, timeout_s: float = START_TIMEOUT_S) -> int:
        """``wait_serving`` off the event loop, so that the test's own servers (an
        emulator, a Redis client) keep answering meanwhile."""
        return await asyncio.to_thread(self.wait_serving, timeout_s)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code; once it is known every stderr line is in ``lines``."""
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    async def exited(self, timeout_s: float = 60.0) -> int:
        """``wait`` off the event loop."""
        return await asyncio.to_thread(self.wait, timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def serve(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    *,
    command: Sequence[str] = MODULE_COMMAND,
) -> Iterator[Serve]:
    """A ``Serve`` that is killed (and its workers with it) when the block ends."""
    running = Serve(args, env, cwd, command=command)
    try:
        yield running
    finally:
        running.kill()
        # Workers drain and exit when the supervisor's pipes close; make sure.
        for record in running.records():
            pid = record.get("pid")
            if isinstance(pid, int) and record.get("msg") in ("worker serving", "worker restarted"):
                _kill_if_ours(pid, running.process.pid)


def _kill_if_ours(pid: int, parent: int) -> None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return
    if int(stat.rsplit(")", 1)[1].split()[1]) in (parent, 1):
        os.kill(pid, signal.SIGKILL)
