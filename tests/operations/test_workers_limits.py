"""The local limits store with real worker processes: ``imagegate serve --workers 2``
and no Redis enforce one set of limits, and a restart forgets no spend.

Each test makes its clients with ``imagegate clients add`` (as an operator does), runs
``serve`` in its own directory (so its data directory is ``./data`` there) and calls
it over many connections, which the kernel spreads over both workers.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc
from operations_support import wait_until
from support.serve import MODULE_COMMAND, Serve, clean_env, serve

pytestmark = pytest.mark.slow

CONNECTIONS = 16


def _add_client(clients_file: Path, name: str, *limits: str) -> str:
    done = subprocess.run(
        [*MODULE_COMMAND, "clients", "add", name, "--file", str(clients_file), *limits],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        timeout=60,
    )
    return done.stdout.strip()


def _request(tag: str) -> pb.CreateImageRequest:
    return pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(
            prompt=f"fox {tag}", model="dall-e-2", size="256x256"
        )
    )


def _call_on_many_connections(port: int, token: str, tag: str) -> list[grpc.StatusCode]:
    """One call on each of CONNECTIONS connections, all at once: their codes."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(CONNECTIONS)
    ]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=30)
        metadata = (("authorization", f"Bearer {token}"),)
        futures = [
            images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage.future(
                _request(f"{tag}-{i}"), metadata=metadata, timeout=60
            )
            for i, channel in enumerate(channels)
        ]
        codes = []
        for future in futures:
            try:
                future.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
        return codes
    finally:
        for channel in channels:
            channel.close()


def _workers_that_served(server: Serve, client: str) -> set[int]:
    return {
        r["worker"]
        for r in server.records()
        if r.get("msg") == "rpc finished" and r.get("client") == client
    }


def _quota(port: int, token: str) -> quota_pb2.GetQuotaResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer: quota_pb2.GetQuotaResponse = quota_pb2_grpc.QuotaServiceStub(channel).GetQuota(
            quota_pb2.GetQuotaRequest(),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
        return answer


def _env(clients_file: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        IMAGEGATE_CLIENTS_FILE=str(clients_file),
        IMAGEGATE_EMULATOR_CACHE_RENDERS="true",
        **extra,
    )


def test_two_workers_admit_exactly_the_images_per_minute_of_a_client(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.toml"
    token = _add_client(clients_file, "team-a", "--images-per-minute", "4")
    with serve(["--workers", "2", "--port", "0"], _env(clients_file), tmp_path) as server:
        port = server.wait_serving()
        codes = _call_on_many_connections(port, token, "rate")
        # Both workers answered this client (else the test would prove nothing).
        wait_until(
            lambda: _workers_that_served(server, "team-a") == {0, 1}, 10, "both workers' lines"
        )
        assert Counter(codes) == {
            grpc.StatusCode.OK: 4,
            grpc.StatusCode.RESOURCE_EXHAUSTED: CONNECTIONS - 4,
        }
        quota = _quota(port, token)
        (rate,) = [r for r in quota.rates if r.name == "images_per_minute"]
        assert rate.remaining == 0
        server.terminate()
        assert server.wait() == 0
    assert (tmp_path / "data" / "imagegate.sqlite3").is_file()


def test_two_workers_share_one_concurrency_limit(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.toml"
    token = _add_client(clients_file, "team-c", "--max-concurrent", "2")
    with serve(["--workers", "2", "--port", "0"], _env(clients_file), tmp_path) as server:
        port = server.wait_serving()
        record = server.wait_for_record(lambda r: "share one embedded emulator" in r.get("msg", ""))
        origin = str(record["upstream"]).removesuffix("/v1")
        # Every generation takes 3 s upstream, so the calls overlap.
        slow = urllib.request.Request(
            f"{origin}/_emulator/faults",
            data=json.dumps({"faults": "latency;ms=3000"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(slow, timeout=10) as response:
            assert response.status == 200
        codes = _call_on_many_connections(port, token, "slots")
        wait_until(
            lambda: _workers_that_served(server, "team-c") == {0, 1}, 10, "both workers' lines"
        )
        assert Counter(codes) == {
            grpc.StatusCode.OK: 2,
            grpc.StatusCode.RESOURCE_EXHAUSTED: CONNECTIONS - 2,
        }
        # Settled: the slots are free again for the next calls.
        assert _quota(port, token).concurrency.in_use == 0


def test_spend_survives_a_restart_of_serve(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.toml"
    # A 256x256 dall-e-2 image costs $0.016: one fits in $0.02, a second does not.
    token = _add_client(clients_file, "team-b", "--daily-budget-usd", "0.02")
    env = _env(clients_file)
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        port = server.wait_serving()
        codes = _call_on_many_connections(port, token, "spend")
        assert Counter(codes) == {
            grpc.StatusCode.OK: 1,
            grpc.StatusCode.RESOURCE_EXHAUSTED: CONNECTIONS - 1,
        }
        before = _quota(port, token)
        assert before.spent_today_usd_micros == 16_000
        server.terminate()
        assert server.wait() == 0

    (tmp_path / "port").unlink()
    with serve(["--port", "0"], env, tmp_path) as server:
        port = server.wait_serving()
        after = _quota(port, token)
        assert after.spent_today_usd_micros == 16_000
        assert after.spent_this_month_usd_micros == 16_000
        assert after.budgets[0].remaining_usd_micros == 4_000
        with (
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(
                _request("after"), metadata=(("authorization", f"Bearer {token}"),), timeout=60
            )
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "daily_budget" in (refused.value.details() or "")


def test_a_data_directory_that_cannot_be_created_stops_serve_with_one_line(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be\n")
    for args in (["--port", "0"], ["--workers", "2", "--port", "0"]):
        env = clean_env(IMAGEGATE_DATA_DIR=str(blocker / "data"))
        with serve(args, env, tmp_path) as server:
            assert server.wait(60) == 1
        errors = [line for line in server.lines if not line.startswith("{")]
        assert errors == [
            f"imagegate serve: IMAGEGATE_DATA_DIR: cannot create the data directory "
            f"'{blocker / 'data'}' (Not a directory); set IMAGEGATE_DATA_DIR to a writable "
            f"directory"
        ], server.lines
