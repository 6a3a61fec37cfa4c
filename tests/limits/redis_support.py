"""A real ``redis-server`` for tests: a free loopback port, a temporary directory,
no persistence; stopped and restarted on the same port for outage tests.

Without the binary, tests that need it fail under CI (``CI=true``: CI installs it
with apt, so a missing binary is a broken CI) and are skipped elsewhere, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get install -y --no-install-recommends redis-server"


def redis_server_binary() -> str:
    """The redis-server path, or a failed (CI) or skipped (elsewhere) test."""
    binary = shutil.which("redis-server")
    if binary:
        return binary
    message = f"redis-server is not installed (needed by the Redis limiter tests): {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int, password: str | None) -> bool:
    """True when the server replies +PONG to PING (after AUTH when it has a password)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            if password is not None:
                conn.sendall(f"AUTH {password}\r\n".encode())
                if not conn.recv(64).startswith(b"+OK"):
                    return False
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; ``start`` picks a free port the first time."""

    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        binary = redis_server_binary()
        for _ in range(5):
            port = self.port or _free_port()
            args = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"),
            ]  # fmt: skip
            if self.password:
                args += ["--requirepass", self.password]
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and process.poll() is None:
                if _answers(port, self.password):
                    self._process, self.port = process, port
                    return
                time.sleep(0.02)
            process.kill()
            process.wait()
            if self.port is not None:
                break  # a restart must keep its port: do not wander off
        log = self.directory / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}: {tail}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop it (SIGTERM, or SIGKILL for a crash) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
