"""Helpers for operations tests: ``imagegate serve`` as a real process, its JSON log
lines, free loopback ports, scraping ``/metrics`` and asking gRPC health."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from imagegate_server.gateway.server import Gateway

# Distinctive, so a test can search output for it.
OPENAI_KEY = "sk-operationstest-SECRETKEY-0123456789"
# ``await start_gateway(**settings)`` (see conftest).
GatewayFactory = Callable[..., Awaitable[Gateway]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Two shared cores and several agents: a worker's interpreter may take seconds to start.
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any IMAGEGATE_* or PROMETHEUS_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGATE_", "PROMETHEUS_"))}
    env.update(extra)
    return env


class Serve:
    """``imagegate serve ARGS`` in its own process, its stderr collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.port_file = cwd / "port"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imagegate_server.cli", "serve", "--host", "127.0.0.1",
             "--port-file", str(self.port_file), *args],
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

    def wait_serving(self) -> int:
        """The port from the port file, once it is written."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.port_file.exists() and self.port_file.read_text().endswith("\n"):
                return int(self.port_file.read_text())
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}: {self.lines}")
            time.sleep(0.05)
        raise AssertionError(f"serve did not write its port file: {self.lines}")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def serve(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Serve]:
    running = Serve(args, env, cwd)
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


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {sample name with sorted labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def health(port: int, service: str, timeout: float = 5.0) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        ).status
        return status


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
