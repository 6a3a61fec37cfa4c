"""A flood of idle connections at a lowered open-file limit: ``imagegate serve`` runs
under ``prlimit`` (1,024 files, soft and hard, so it cannot raise them), and 1,100
connections per process from one address send the HTTP/2 preface and then nothing.
Before, they took every descriptor: the health port and a new caller both timed out.

Now callers' connections get at most half the open-file limit (512), the flooding
address loses its connections past its cap within a second, and the rest of the
descriptors stay for calls, upstream connections and the health port.
"""

from __future__ import annotations

import re
import resource
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from operations_support import SERVING, health, scrape, wait_until
from support.connections import close_all, open_connections, vm_hwm_kib
from support.serve import MODULE_COMMAND, Serve, clean_env, free_port, serve

FLOOD = 1100
OPEN_FILES = 1024
LIMITED = ("prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}", *MODULE_COMMAND)
# Stated bound: what one idle connection held by gRPC may cost the gateway at its peak.
PEAK_PER_CONNECTION_KIB = 32


def _call(port: int, tag: str) -> pb.CreateImageResponse:
    """An image call on a new channel, as a new caller makes it (from 127.0.0.1)."""
    request = pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt=tag))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        response: pb.CreateImageResponse = stub.CreateImage(
            request, timeout=30, wait_for_ready=True
        )
        return response


def _probe(port: int) -> int:
    """A probe as a kubelet retries it: a new channel, waiting for a connection."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service="readiness")
        answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=15, wait_for_ready=True)
        status: int = answer.status
        return status


def _flood(port: int, count: int) -> list[socket.socket]:
    """``count`` idle connections from 127.0.0.2, this process's own limit permitting."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 256
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"this test needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return open_connections(port, count)


def _serving_pids(server: Serve, workers: int | None) -> list[int]:
    if workers is None:
        return [server.process.pid]
    record = server.wait_for_record(lambda r: r.get("msg") == "serving" and "pids" in r)
    pids: list[int] = record["pids"]
    return pids


def _ports() -> tuple[int, int, dict[str, str]]:
    health_port, metrics_port = free_port(), free_port()
    env = clean_env(
        IMAGEGATE_HEALTH_PORT=str(health_port), IMAGEGATE_METRICS_PORT=str(metrics_port)
    )
    return health_port, metrics_port, env


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_a_flood_of_idle_connections_leaves_room_for_a_caller_and_the_probes(
    tmp_path: Path, workers: int | None
) -> None:
    health_port, metrics_port, env = _ports()
    args = ["--port", "0"] + (["--workers", str(workers)] if workers else [])
    with serve(args, env, tmp_path, command=LIMITED) as server:
        port = server.wait_serving()
        pids = _serving_pids(server, workers)
        assert _call(port, "before the flood").result.images[0].data
        before = {pid: vm_hwm_kib(pid) for pid in pids}
        # Past every process's limit: the kernel spreads connections over workers.
        processes = workers or 1
        flood = _flood(port, FLOOD * processes)
        try:
            # The probes' port has its own descriptors, and answers at once.
            assert health(health_port, "readiness") == SERVING
            # A new caller is served (its channel retries a refused connection).
            assert _call(port, "during the flood").result.images[0].data
            assert _probe(health_port) == SERVING
            # At most 512 of the flood were held per process, at a bounded cost.
            for pid, peak in before.items():
                assert vm_hwm_kib(pid) - peak <= OPEN_FILES // 2 * PEAK_PER_CONNECTION_KIB
            samples = scrape(metrics_port)
            assert samples["imagegate_connections_limit{port=grpc}"] == 512 * processes
            assert samples["imagegate_connections_closed_total{port=grpc,reason=per_address}"] > 0
        finally:
            close_all(flood)


def test_a_flood_of_the_health_port_leaves_room_for_probes(tmp_path: Path) -> None:
    health_port, _, env = _ports()
    with serve(["--port", "0"], env, tmp_path, command=LIMITED) as server:
        port = server.wait_serving()
        flood = _flood(health_port, FLOOD)
        try:
            assert _probe(health_port) == SERVING
            assert _call(port, "during the flood").result.images[0].data
        finally:
            close_all(flood)


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_the_open_file_limit_is_raised_to_the_hard_limit(
    tmp_path: Path, workers: int | None
) -> None:
    command = ("prlimit", "--nofile=1024:4096", *MODULE_COMMAND)
    args = ["--port", "0"] + (["--workers", str(workers)] if workers else [])
    # An upstream pool that fits the half callers leave: no warning.
    env = clean_env(IMAGEGATE_MAX_CONNECTIONS="1024")
    with serve(args, env, tmp_path, command=command) as server:
        server.wait_serving()
        pids = _serving_pids(server, workers)
        for pid in pids:
            limits = Path(f"/proc/{pid}/limits").read_text()
            assert re.search(r"^Max open files\s+4096\s+4096\s", limits, re.MULTILINE)

        def started() -> list[dict[str, Any]]:
            return [r for r in server.records() if r.get("msg") == "serving" and "open_files" in r]

        wait_until(lambda: len(started()) == len(pids), 10, "every process's serving line")
        assert {(r["open_files"], r["max_caller_connections"]) for r in started()} == {(4096, 2048)}
        assert not [r for r in server.records() if "too low" in r.get("msg", "")]


def test_a_limit_too_low_for_the_upstream_pool_is_logged(tmp_path: Path) -> None:
    # 1,024 files: 512 for callers leave too few for 4,096 upstream connections.
    with serve(["--port", "0"], clean_env(), tmp_path, command=LIMITED) as server:
        server.wait_serving()
        warning = server.wait_for_record(lambda r: "too low" in r.get("msg", ""), 10)
        assert warning["level"] == "WARNING"
        assert (warning["open_files"], warning["upstream_pool"]) == (1024, 4096)
