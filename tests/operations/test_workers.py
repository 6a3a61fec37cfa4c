"""``imagegate serve --workers 2``: real supervisor and worker processes on loopback.

What the edge records per call (grpc_server_*, images, spend) is wired by the
gateway, not here; these tests check what the supervisor itself guarantees: one
port and one emulator for all workers, one /metrics summing every worker's files
(``imagegate_server_starts_total``: each worker counts its own start), restarts,
and a drain that loses no call.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from operations_support import NOT_SERVING, SERVING, health, scrape, wait_until
from support.serve import Serve, clean_env, free_port, serve

from imagegate_server.emulator.real_sizes import target_bytes

pytestmark = pytest.mark.slow

GENERATIONS = "/v1/images/generations"
CHANNELS = 12  # the kernel spreads connections: 12 leave both workers idle with p = 2**-11


def _request(tag: str) -> pb.CreateImageRequest:
    return pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt=f"fox {tag}"))


def _channels(port: int) -> list[grpc.Channel]:
    # A local subchannel pool each: a connection of its own per channel.
    options = [("grpc.use_local_subchannel_pool", 1)]
    return [grpc.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(CHANNELS)]


def _call_each(channels: list[grpc.Channel], tag: str) -> list[pb.CreateImageResponse]:
    futures = [
        images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage.future(
            _request(f"{tag}-{i}"), timeout=60
        )
        for i, channel in enumerate(channels)
    ]
    return [future.result() for future in futures]


def _emulator_origin(server: Serve) -> str:
    record = server.wait_for_record(lambda r: "share one embedded emulator" in r.get("msg", ""))
    upstream: str = record["upstream"]
    return upstream.removesuffix("/v1")


def _journal(origin: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{origin}/_emulator/requests", timeout=10) as response:
        entries: list[dict[str, Any]] = json.load(response)
    return [e for e in entries if e["path"] == GENERATIONS]


def _worker_pids(server: Serve, message: str) -> dict[int, int]:
    return {r["worker"]: r["pid"] for r in server.records() if r.get("msg") == message}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_share_a_port_an_emulator_and_a_metrics_endpoint_and_come_back(
    tmp_path: Path,
) -> None:
    metrics_port, health_port = free_port(), free_port()
    env = clean_env(
        IMAGEGATE_METRICS_PORT=str(metrics_port),
        IMAGEGATE_HEALTH_PORT=str(health_port),
        IMAGEGATE_EMULATOR_CACHE_RENDERS="true",
    )
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        port = server.wait_serving()
        # The port file follows both workers' lines, but those pass a reader thread.
        wait_until(
            lambda: len(_worker_pids(server, "worker serving")) == 2, 10, "both serving lines"
        )
        pids = _worker_pids(server, "worker serving")
        assert sorted(pids) == [0, 1] and len(set(pids.values())) == 2
        origin = _emulator_origin(server)
        assert health(health_port, "readiness") == SERVING
        assert health(port, "") == SERVING

        channels = _channels(port)
        try:
            results = _call_each(channels, "first")
            assert all(len(r.result.images) == 1 for r in results)

            # Both workers served calls, and both used the one emulator (their log lines
            # come through a reader thread, so wait for the last ones).
            def served_by() -> set[int]:
                return {r["worker"] for r in server.records() if r.get("msg") == "rpc finished"}

            wait_until(lambda: served_by() == {0, 1}, 10, "both workers' log lines")
            assert len(_journal(origin)) == CHANNELS

            samples = scrape(metrics_port)
            assert samples["imagegate_server_starts_total"] == 2  # one per worker, summed
            assert samples["imagegate_upstream_up{upstream=default}"] == 1
            assert samples["imagegate_limiter_up"] == 1

            # A worker killed outright is replaced, and the supervisor says so.
            killed = pids[1]
            os.kill(killed, signal.SIGKILL)
            died = server.wait_for_record(
                lambda r: r.get("pid") == killed and "exit_code" in r, timeout=30
            )
            assert died["level"] == "ERROR" and died["worker"] == 1
            assert died["exit_code"] == -signal.SIGKILL
            assert "SIGKILL" in died["msg"] and "restarting" in died["msg"]
            replaced = server.wait_for_record(lambda r: r.get("msg") == "worker restarted")
            assert replaced["worker"] == 1 and replaced["pid"] != killed
            assert _alive(replaced["pid"]) and not _alive(killed)

            samples = scrape(metrics_port)
            assert samples["imagegate_server_starts_total"] == 3  # the dead one's count stays
            results = _call_each(channels, "second")
            assert all(len(r.result.images) == 1 for r in results)
        finally:
            for channel in channels:
                channel.close()
        server.terminate()
        assert server.wait() == 0
    assert not _alive(pids[0]) and not _alive(replaced["pid"])


def test_sigterm_drains_every_worker_and_loses_no_call(tmp_path: Path) -> None:
    health_port = free_port()
    env = clean_env(
        IMAGEGATE_HEALTH_PORT=str(health_port),
        IMAGEGATE_DRAIN_NOTICE_S="1.5",
        IMAGEGATE_SHUTDOWN_GRACE_S="30",
        IMAGEGATE_EMULATOR_CACHE_RENDERS="true",
    )
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        port = server.wait_serving()
        origin = _emulator_origin(server)
        # Every generation now takes 1.5 s upstream (the gateway does not pass callers'
        # metadata on, so the fault is the shared emulator's default).
        set_faults = urllib.request.Request(
            f"{origin}/_emulator/faults",
            data=json.dumps({"faults": "latency;ms=1500"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(set_faults, timeout=10) as response:
            assert response.status == 200
        assert health(health_port, "readiness") == SERVING

        channels = _channels(port)
        try:
            with ThreadPoolExecutor(1) as pool:
                calls = pool.submit(_call_each, channels, "drain")

                def all_in_flight() -> bool:
                    entries = _journal(origin)
                    return len(entries) == CHANNELS and not any(
                        event["kind"] == "finished" for e in entries for event in e["events"]
                    )

                wait_until(all_in_flight, 30, "every call to be in flight upstream")
                server.terminate()
                # During the notice: not ready (on whichever worker answers), still alive.
                wait_until(
                    lambda: health(health_port, "readiness") == NOT_SERVING, 5, "NOT_SERVING"
                )
                assert health(health_port, "liveness") == SERVING
                results = calls.result(timeout=60)
        finally:
            for channel in channels:
                channel.close()
        assert len(results) == CHANNELS
        assert all(len(r.result.images) == 1 for r in results)
        assert server.wait() == 0
    finished = [r for r in server.records() if r.get("msg") == "rpc finished"]
    assert {r["worker"] for r in finished} == {0, 1}, finished
    assert [r["code"] for r in finished] == ["OK"] * CHANNELS
    assert server.records()[-1]["msg"] == "stopped"


def test_the_shared_emulator_follows_the_real_sizes_setting(tmp_path: Path) -> None:
    env = clean_env(IMAGEGATE_EMULATOR_REAL_SIZES="true")
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        port = server.wait_serving()
        parameters = params_pb2.GenerationParameters(
            prompt="fox", model="gpt-image-1.5", size="1024x1024", quality=params_pb2.QUALITY_MEDIUM
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = images_service_pb2_grpc.ImagesServiceStub(channel)
            result = stub.CreateImage(pb.CreateImageRequest(parameters=parameters), timeout=60)
        server.terminate()
        assert server.wait() == 0
    # As large as OpenAI's answer, not the default's flat shapes of a few KiB.
    target = target_bytes("png", "medium", 100, False, 1024, 1024)
    assert target is not None
    assert abs(len(result.result.images[0].data) / target - 1) <= 0.25


def test_a_port_in_use_stops_the_supervisor_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serve(["--workers", "2", "--port", str(port)], clean_env(), tmp_path) as server:
            assert server.wait() == 1
    problems = [line for line in server.lines if line.startswith("imagegate serve:")]
    assert len(problems) == 1 and f"127.0.0.1:{port}" in problems[0], server.lines
    assert not any("Traceback" in line for line in server.lines)
    assert not any(r.get("msg") == "worker serving" for r in server.records())


def test_an_unusable_metrics_directory_stops_the_supervisor_in_one_line(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(not_a_directory))
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        assert server.wait() == 1
    problems = [line for line in server.lines if line.startswith("imagegate serve:")]
    assert len(problems) == 1 and "PROMETHEUS_MULTIPROC_DIR" in problems[0], server.lines
    assert not any("Traceback" in line for line in server.lines)
