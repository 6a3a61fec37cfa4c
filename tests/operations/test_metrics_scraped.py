"""Metrics as Prometheus scrapes them from a running ``imagegate serve``, after real
calls: every count equals the calls the test made, errors and refusals included,
in one process and summed over two workers.

The upstream is an emulator in the test (faults injected there); the callers are
two clients of a clients file: ``team-a`` without limits and ``team-b`` with
``requests_per_minute = 2``, so its third call is refused.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc
from observability_support import add_client, bearer, edit_messages
from operations_support import OPENAI_KEY, scrape, wait_until
from support.images import png
from support.serve import Serve, clean_env, free_port, serve

from imagegate_server.emulator import Emulator

pytestmark = pytest.mark.slow

SERVICE = "imagegate.v1.ImagesService"
MODEL = "gpt-image-2"
RATE_LIMITED = 2  # team-b's requests_per_minute
CHANNELS = 12  # for two workers: the kernel spreads connections, not calls


@dataclass
class Calls:
    """What the test's calls did, as the gateway should have counted it."""

    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(method, gRPC code) of every call."""
    images: int = 0
    """Generated images returned."""
    spend_micros: Counter[str] = field(default_factory=Counter)
    """By client: the costs the results carried."""

    def count(self, method: str) -> int:
        return sum(n for (m, _), n in self.codes.items() if m == method)


def _generation(prompt: str, n: int = 1) -> pb.CreateImageRequest:
    return pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(prompt=prompt, model=MODEL, n=n)
    )


async def _generate(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    calls: Calls,
    client: str,
    token: str,
    request: pb.CreateImageRequest,
) -> None:
    try:
        reply = await stub.CreateImage(request, metadata=bearer(token), timeout=60)
    except grpc.aio.AioRpcError as error:
        calls.codes["CreateImage", error.code().name] += 1
        return
    calls.codes["CreateImage", "OK"] += 1
    calls.images += len(reply.result.images)
    calls.spend_micros[client] += reply.result.cost.usd_micros


async def _make_calls(
    channels: list[grpc.aio.Channel], emulator: Emulator, tokens: dict[str, str], upload: bytes
) -> Calls:
    """Successes on every channel, then an edit, a bad request, an upstream failure, a
    retried call and team-b past its rate; all in order, so faults hit the call meant."""
    calls = Calls()
    stubs = [images_service_pb2_grpc.ImagesServiceStub(c) for c in channels]
    stub, team_a = stubs[0], tokens["team-a"]
    await asyncio.gather(
        *(
            _generate(s, calls, "team-a", team_a, _generation(f"fox {i}", n=2 if i == 0 else 1))
            for i, s in enumerate(stubs)
        )
    )
    reply = await stub.CreateImageEdit(
        iter(edit_messages("add a hat", upload)), metadata=bearer(team_a), timeout=60
    )
    calls.codes["CreateImageEdit", "OK"] += 1
    calls.spend_micros["team-a"] += reply.result.cost.usd_micros

    await _generate(stub, calls, "team-a", team_a, _generation(""))  # INVALID_ARGUMENT
    await _generate(stub, calls, "nobody", "igk_wrong_token", _generation("x"))  # UNAUTHENTICATED
    emulator.set_faults("503;first=1")  # not retried: UNAVAILABLE
    await _generate(stub, calls, "team-a", team_a, _generation("a storm"))
    emulator.set_faults("429;retry-after-ms=10;first=1")  # retried once, then OK
    await _generate(stub, calls, "team-a", team_a, _generation("a calm"))
    emulator.set_faults("")
    for i in range(RATE_LIMITED + 1):  # the last one is refused
        await _generate(stub, calls, "team-b", tokens["team-b"], _generation(f"owl {i}"))
    # Asking for its quota is a call too (and uses none of it).
    quota = quota_pb2_grpc.QuotaServiceStub(channels[0])
    await quota.GetQuota(quota_pb2.GetQuotaRequest(), metadata=bearer(team_a), timeout=30)
    calls.codes["GetQuota", "OK"] += 1
    return calls


def _sample(samples: dict[str, float], name: str, **labels: str) -> float:
    key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return samples.get(f"{name}{{{key}}}", 0.0)


def _check(samples: dict[str, float], calls: Calls, upload_bytes: int) -> None:
    unary = {"grpc_service": SERVICE, "grpc_type": "unary"}
    edit = {"grpc_service": SERVICE, "grpc_type": "client_stream", "grpc_method": "CreateImageEdit"}
    assert calls.codes == Counter(
        {
            ("CreateImage", "OK"): calls.count("CreateImage") - 4,
            ("CreateImage", "INVALID_ARGUMENT"): 1,
            ("CreateImage", "UNAVAILABLE"): 1,
            ("CreateImage", "RESOURCE_EXHAUSTED"): 1,
            ("CreateImage", "UNAUTHENTICATED"): 1,
            ("CreateImageEdit", "OK"): 1,
            ("GetQuota", "OK"): 1,
        }
    )
    quota = {"grpc_service": "imagegate.v1.QuotaService", "grpc_type": "unary"}
    for method, labels in (("CreateImage", unary), ("CreateImageEdit", edit), ("GetQuota", quota)):
        labels = {**labels, "grpc_method": method}
        made = calls.count(method)
        assert _sample(samples, "grpc_server_started_total", **labels) == made, method
        for (m, code), count in calls.codes.items():
            if m == method:
                handled = _sample(samples, "grpc_server_handled_total", **labels, grpc_code=code)
                assert handled == count, (method, code)
        assert _sample(samples, "grpc_server_handling_seconds_count", **labels) == made
        ok = calls.codes[method, "OK"]
        assert _sample(samples, "grpc_server_msg_sent_total", **labels) == ok
    # One message per unary request (refused, invalid and unauthenticated ones too:
    # gRPC read each before the call began); the edit's parameters and its two chunks.
    assert _sample(
        samples, "grpc_server_msg_received_total", **unary, grpc_method="CreateImage"
    ) == (calls.count("CreateImage"))
    assert _sample(samples, "grpc_server_msg_received_total", **edit) == 3
    assert _sample(samples, "grpc_server_msg_received_total", **quota, grpc_method="GetQuota") == 1

    assert _sample(samples, "imagegate_images_total", model=MODEL, operation="generation") == (
        calls.images
    )
    assert _sample(samples, "imagegate_images_total", model=MODEL, operation="edit") == 1
    # Upstream: every admitted call, the 429 and its retry each a request.
    succeeded = calls.codes["CreateImage", "OK"] + 1
    upstream = {"upstream": "default", "model": MODEL}
    assert _sample(samples, "imagegate_upstream_requests_total", **upstream, status="200") == (
        succeeded
    )
    assert _sample(samples, "imagegate_upstream_requests_total", **upstream, status="503") == 1
    assert _sample(samples, "imagegate_upstream_requests_total", **upstream, status="429") == 1
    assert _sample(samples, "imagegate_upstream_seconds_count", **upstream) == succeeded + 2
    assert (
        _sample(
            samples, "imagegate_upstream_retries_total", upstream="default", cause="rate_limited"
        )
        == 1
    )
    assert _sample(samples, "imagegate_upload_bytes_total", operation="edit") == upload_bytes
    assert (
        _sample(
            samples, "imagegate_limit_refusals_total", limit="requests_per_minute", client="team-b"
        )
        == 1
    )
    assert (
        _sample(
            samples, "imagegate_limit_refusals_total", limit="requests_per_minute", client="team-a"
        )
        == 0
    )
    for client in ("team-a", "team-b"):
        spent = _sample(
            samples, "imagegate_spend_usd_total", client=client, model=MODEL, upstream="default"
        )
        assert calls.spend_micros[client] > 0
        assert spent == pytest.approx(calls.spend_micros[client] / 1_000_000, rel=1e-9, abs=0)
        assert _sample(samples, "imagegate_inflight_calls", client=client) == 0
    assert samples["imagegate_upstream_up{upstream=default}"] == 1


def _clients_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "clients.toml"
    tokens = {
        "team-a": add_client(path, "team-a"),
        "team-b": add_client(path, "team-b", "--requests-per-minute", str(RATE_LIMITED)),
    }
    return path, tokens


def _env(emulator: Emulator, clients: Path, metrics_port: int) -> dict[str, str]:
    return clean_env(
        IMAGEGATE_METRICS_PORT=str(metrics_port),
        IMAGEGATE_OPENAI_API_KEY=OPENAI_KEY,
        IMAGEGATE_OPENAI_BASE_URL=emulator.base_url,
        IMAGEGATE_CLIENTS_FILE=str(clients),
        IMAGEGATE_RETRY_BACKOFF_S="0.01",
        IMAGEGATE_SHUTDOWN_GRACE_S="5",
    )


def _channels(port: int, count: int) -> list[grpc.aio.Channel]:
    # A local subchannel pool each: a connection of its own per channel.
    options = [("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(count)]


async def _run(server: Serve, emulator: Emulator, tokens: dict[str, str], channels: int) -> Calls:
    port = await asyncio.to_thread(server.wait_serving)
    opened = _channels(port, channels)
    try:
        return await _make_calls(opened, emulator, tokens, UPLOAD)
    finally:
        for channel in opened:
            await channel.close()


UPLOAD = png(96, 96, mode="RGB")


async def test_one_process_counts_every_call_it_served(tmp_path: Path, emulator: Emulator) -> None:
    clients, tokens = _clients_file(tmp_path)
    metrics_port = free_port()
    with serve(["--port", "0"], _env(emulator, clients, metrics_port), tmp_path) as server:
        calls = await _run(server, emulator, tokens, channels=3)
        samples = await asyncio.to_thread(scrape, metrics_port)
        _check(samples, calls, len(UPLOAD))
        assert samples["imagegate_server_starts_total"] == 1
        server.terminate()
        assert await asyncio.to_thread(server.wait) == 0


async def test_the_supervisor_sums_both_workers_counts_exactly(
    tmp_path: Path, emulator: Emulator
) -> None:
    clients, tokens = _clients_file(tmp_path)
    metrics_port = free_port()
    env = _env(emulator, clients, metrics_port)
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        calls = await _run(server, emulator, tokens, channels=CHANNELS)

        def finished() -> list[dict[str, object]]:
            return [r for r in server.records() if r.get("msg") == "rpc finished"]

        # The workers' stderr reaches the test through a reader thread: the last
        # calls' lines may still be on their way when the calls have returned.
        made = sum(calls.codes.values())
        await asyncio.to_thread(
            wait_until, lambda: len(finished()) >= made, 10, "every call's log line"
        )
        # Both workers served calls: the sums below are over two processes' files.
        assert {r["worker"] for r in finished()} == {0, 1}
        assert len(finished()) == made
        samples = await asyncio.to_thread(scrape, metrics_port)
        _check(samples, calls, len(UPLOAD))
        assert samples["imagegate_server_starts_total"] == 2
        server.terminate()
        assert await asyncio.to_thread(server.wait) == 0
