"""Routing over three real upstreams: weights, priorities, failover that never bills
twice (counted in the emulators' journals), what never fails over, Azure's routes and
refusals, and a client pinned to its own upstream."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import grpc
import pytest
from gateway.gateway_support import chunks_of, detail, edit_requests, violations
from gateway.tenancy_support import ClientsFile
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2
from routing_support import (
    AZURE_DEPLOYMENT,
    MODEL,
    Upstreams,
    gateway,
    generation,
    metadata,
    stub_for,
)
from routing_support import settings as settings_for
from support.images import png

from imagegate_server.gateway.server import Gateway

ALL = ("openai-a", "openai-b", "azure-eu")


async def _calls(
    running: Gateway, count: int, concurrency: int = 16, token: str | None = None
) -> list[pb.CreateImageResponse | grpc.aio.AioRpcError]:
    """``count`` generations, ``concurrency`` at a time: each reply or error, in order."""
    limit = asyncio.Semaphore(concurrency)
    async with stub_for(running) as stub:

        async def one(index: int) -> pb.CreateImageResponse | grpc.aio.AioRpcError:
            async with limit:
                try:
                    reply: pb.CreateImageResponse = await stub.CreateImage(
                        generation(f"call {index}"), metadata=metadata(token), timeout=60
                    )
                    return reply
                except grpc.aio.AioRpcError as error:
                    return error

        return await asyncio.gather(*(one(i) for i in range(count)))


def _answered(replies: list[pb.CreateImageResponse | grpc.aio.AioRpcError]) -> list[str]:
    """The upstream each call's result names; fails on a failed call."""
    names = []
    for reply in replies:
        assert isinstance(reply, pb.CreateImageResponse), reply
        names.append(reply.result.upstream)
    return names


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_calls_spread_by_weight_over_1000_calls(upstreams: Upstreams) -> None:
    upstreams.write(
        upstreams.entry("openai-a", weight=6),
        upstreams.entry("openai-b", weight=3),
        upstreams.entry("azure-eu", weight=1),
    )
    async with gateway(upstreams.file) as running:
        names = _answered(await _calls(running, 1000, concurrency=32))
    # Each upstream's share within 10 points of its weight's share (60/30/10 %): an
    # even spread (33 % each) would miss two of them by far.
    expected = {"openai-a": 0.6, "openai-b": 0.3, "azure-eu": 0.1}
    for name, share in expected.items():
        assert abs(names.count(name) / 1000 - share) <= 0.10, (name, names.count(name))
        # Each call generated once, where its result says.
        assert upstreams.generations(name) == names.count(name)


async def test_a_lower_priority_is_used_only_when_the_first_cannot_be(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    async with gateway(upstreams.file) as running:
        assert set(_answered(await _calls(running, 20))) == {"openai-a"}
        upstreams.emulators["openai-a"].set_faults("429;retry-after=30")
        assert set(_answered(await _calls(running, 10))) == {"openai-b"}
    assert upstreams.generations("openai-a") == 20
    assert upstreams.generations("openai-b") == 10


@pytest.mark.parametrize(
    "fault", ["429;retry-after=1", "503;x-should-retry=true", "quota"], ids=str
)
async def test_a_refusal_that_generated_nothing_moves_the_call_on_once(
    upstreams: Upstreams, fault: str
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    upstreams.emulators["openai-a"].set_faults(fault)
    # A breaker that never opens: each call must fail over by itself.
    async with gateway(upstreams.file, upstream_circuit_failures=1000) as running:
        names = _answered(await _calls(running, 20))
    assert set(names) == {"openai-b"}
    # Every call asked openai-a once (no retry there: the next upstream is a better
    # bet) and generated exactly once, at openai-b.
    assert upstreams.requests("openai-a") == 20
    assert upstreams.generations("openai-a") == 0
    assert upstreams.generations("openai-b") == 20


async def test_a_refused_connection_moves_the_call_on(upstreams: Upstreams) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    upstreams.write(
        upstreams.entry("openai-a", base_url=dead), upstreams.entry("openai-b", priority=1)
    )
    async with gateway(upstreams.file) as running:
        names = _answered(await _calls(running, 10))
    assert set(names) == {"openai-b"}
    assert upstreams.generations("openai-b") == 10


async def test_a_server_error_after_the_body_was_sent_is_the_callers(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    upstreams.emulators["openai-a"].set_faults("503")
    async with gateway(upstreams.file) as running:
        replies = await _calls(running, 3)
    for reply in replies:
        assert isinstance(reply, grpc.aio.AioRpcError)
        assert reply.code() == grpc.StatusCode.UNAVAILABLE
    # The request reached openai-a whole: it may have run, so nothing else was asked.
    assert upstreams.requests("openai-a") == 3
    assert upstreams.requests("openai-b") == 0


async def test_no_failover_after_a_read_timeout_or_a_broken_answer(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    emulator = upstreams.emulators["openai-a"]
    async with gateway(upstreams.file, upstream_timeout_s=0.5) as running:
        emulator.set_faults("latency;ms=3000")
        (timed_out,) = await _calls(running, 1)
        emulator.set_faults("reset;after=64")
        (broken,) = await _calls(running, 1)
    assert isinstance(timed_out, grpc.aio.AioRpcError)
    assert timed_out.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert isinstance(broken, grpc.aio.AioRpcError)
    assert broken.code() == grpc.StatusCode.UNAVAILABLE
    assert upstreams.requests("openai-a") == 2
    assert upstreams.requests("openai-b") == 0  # either may have billed at openai-a


async def test_an_upload_refused_before_it_was_sent_moves_on_with_all_of_it(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    # A proxy's 503 before it read the upload: the body cannot have run anywhere.
    upstreams.emulators["openai-a"].set_faults("503;early=true")
    # Megabytes of noise: still being sent when the 503 comes.
    image = png(2048, 2048, noise=True, seed=7, mode="RGB")
    parameters = params_pb2.EditParameters(
        prompt="a hat", model=MODEL, size="1024x1024", images=[params_pb2.FileInfo()]
    )
    chunks = chunks_of(params_pb2.FILE_ROLE_IMAGE, image)
    async with gateway(upstreams.file) as running, stub_for(running) as stub:
        reply = await stub.CreateImageEdit(edit_requests(parameters, chunks), timeout=60)
    assert reply.result.upstream == "openai-b"
    (edit,) = upstreams.emulators["openai-b"].journal.by_path("/v1/images/edits")
    assert edit.status == 200
    (upload,) = edit.files
    assert upload.size == len(image)  # the whole file, not what was left after the 503
    (refused,) = upstreams.emulators["openai-a"].journal.entries
    assert refused.status == 503 and refused.body_kind == "empty"  # answered unread


async def test_the_circuit_opens_after_failures_and_a_probe_closes_it(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    a = upstreams.emulators["openai-a"]
    a.set_faults("500")
    settings = {
        "upstream_circuit_failures": 3,
        "upstream_circuit_window_s": 60,
        "upstream_circuit_open_s": 2.0,
    }
    async with gateway(upstreams.file, **settings) as running:
        opened = await _calls(running, 3, concurrency=1)
        assert all(isinstance(r, grpc.aio.AioRpcError) for r in opened)
        gauge = ("imagegate_upstream_circuit_open", {"upstream": "openai-a"})
        assert running.metrics.registry.get_sample_value(*gauge) == 1
        # Open: calls keep off openai-a (its 500s would fail them) and go to openai-b.
        assert set(_answered(await _calls(running, 10))) == {"openai-b"}
        assert upstreams.requests("openai-a") == 3
        await asyncio.sleep(2.1)
        # Half-open: one probe, which fails: open again, the others kept off.
        (probe,) = await _calls(running, 1)
        assert isinstance(probe, grpc.aio.AioRpcError)
        assert set(_answered(await _calls(running, 5))) == {"openai-b"}
        assert upstreams.requests("openai-a") == 4
        a.set_faults("")
        await asyncio.sleep(2.1)
        # The next probe succeeds: closed, and openai-a takes the calls again.
        assert set(_answered(await _calls(running, 10, concurrency=1))) == {"openai-a"}
        assert running.metrics.registry.get_sample_value(*gauge) == 0


async def test_a_pinned_client_never_reaches_another_upstream(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.write(*(upstreams.entry(name) for name in ALL))
    clients = ClientsFile(tmp_path / "clients.toml")
    pinned = clients.add("team-a", upstreams=["openai-b"])
    free = clients.add("team-b")
    async with gateway(upstreams.file, clients_file=clients.path) as running:
        assert set(_answered(await _calls(running, 60, token=pinned))) == {"openai-b"}
        assert upstreams.generations("openai-b") == 60
        assert len(set(_answered(await _calls(running, 60, token=free)))) > 1
        # Its upstream refusing does not send it elsewhere either.
        upstreams.reset()
        upstreams.emulators["openai-b"].set_faults("429;retry-after=30")
        refused = await _calls(running, 5, token=pinned)
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for r in refused
    )
    assert upstreams.requests("openai-a") == upstreams.requests("azure-eu") == 0


async def test_no_upstream_for_the_model_or_for_the_client_is_refused_before_sending(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.write(upstreams.entry("openai-a", models=["dall-e-*"]), upstreams.entry("openai-b"))
    clients = ClientsFile(tmp_path / "clients.toml")
    pinned = clients.add("team-a", upstreams=["openai-a"])
    open_models = clients.add("team-b")
    async with gateway(upstreams.file, clients_file=clients.path) as running:
        (refused,) = await _calls(running, 1, token=pinned)
        async with stub_for(running) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                request = generation()
                request.parameters.model = "gpt-image-9-unknown"
                await stub.CreateImage(request, metadata=metadata(open_models), timeout=30)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    info = detail(refused, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "UPSTREAM_NOT_ALLOWED"
    # Only openai-b serves gpt-image-*: a model it does not know still goes there.
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert upstreams.requests("openai-a") == 0


async def test_no_upstream_serves_a_model_outside_every_models_list(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a", models=["dall-e-*"]))
    async with gateway(upstreams.file) as running:
        (refused,) = await _calls(running, 1)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.NOT_FOUND
    info = detail(refused, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "NO_UPSTREAM" and info.metadata["model"] == MODEL
    assert upstreams.requests("openai-a") == 0


@pytest.mark.parametrize("route", ["deployments", "v1"])
async def test_azure_is_called_on_its_routes_with_its_header_and_deployment(
    upstreams: Upstreams, route: str
) -> None:
    upstreams.write(upstreams.entry("azure-eu", route=route))
    async with gateway(upstreams.file) as running:
        (reply,) = _answered(await _calls(running, 1))
    assert reply == "azure-eu"
    (entry,) = upstreams.emulators["azure-eu"].journal.entries
    if route == "v1":
        assert entry.path == "/openai/v1/images/generations"
        assert entry.json["model"] == AZURE_DEPLOYMENT
    else:
        assert entry.path == f"/openai/deployments/{AZURE_DEPLOYMENT}/images/generations"
    assert entry.headers["api-key"] == "<redacted>"  # present, and never journalled
    assert "Authorization" not in entry.headers and "authorization" not in entry.headers


async def test_webp_goes_to_an_upstream_that_takes_it_or_is_refused_unsent(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.write(upstreams.entry("azure-eu"), upstreams.entry("openai-a", priority=1))
    clients = ClientsFile(tmp_path / "clients.toml")
    azure_only = clients.add("team-eu", upstreams=["azure-eu"])
    anyone = clients.add("team-b")
    webp = generation(output_format=params_pb2.OUTPUT_FORMAT_WEBP)
    async with (
        gateway(upstreams.file, clients_file=clients.path) as running,
        stub_for(running) as stub,
    ):
        reply = await stub.CreateImage(webp, metadata=metadata(anyone), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateImage(webp, metadata=metadata(azure_only), timeout=30)
    assert reply.result.upstream == "openai-a"  # Azure is first, but takes no WebP
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.output_format" in violations(refused.value)
    assert upstreams.requests("azure-eu") == 0


@pytest.mark.parametrize("fault", ["moderation", "stream-moderation"])
async def test_azure_content_filter_is_invalid_argument_like_openai_moderation(
    upstreams: Upstreams, fault: str
) -> None:
    upstreams.write(upstreams.entry("azure-eu"))
    upstreams.emulators["azure-eu"].set_faults(fault)
    async with gateway(upstreams.file) as running, stub_for(running) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            if fault == "moderation":
                await stub.CreateImage(generation(), timeout=30)
            else:
                request = pb.CreateImageStreamRequest(parameters=generation().parameters)
                request.parameters.partial_images = 1
                async for _ in stub.CreateImageStream(request, timeout=30):
                    pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = detail(refused.value, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "moderation_blocked"


async def test_the_result_and_the_log_line_name_the_upstream(
    upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    upstreams.emulators["openai-a"].set_faults("429;retry-after=1")
    caplog.set_level(logging.INFO)
    async with gateway(upstreams.file) as running:
        (name,) = _answered(await _calls(running, 1))
    assert name == "openai-b"
    (finished,) = [r for r in caplog.records if r.getMessage() == "rpc finished"]
    assert finished.upstream == "openai-b"  # type: ignore[attr-defined]


async def test_an_upstream_at_its_ceiling_is_passed_by_and_all_at_theirs_is_refused(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.write(
        upstreams.entry("openai-a", images_per_minute=3),
        upstreams.entry("openai-b", priority=1, requests_per_minute=2),
    )
    async with gateway(upstreams.file) as running:
        names = _answered(await _calls(running, 5, concurrency=1))
        (refused,) = await _calls(running, 1)
    assert names == ["openai-a"] * 3 + ["openai-b"] * 2
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    quota = detail(refused, error_details_pb2.QuotaFailure)
    assert isinstance(quota, error_details_pb2.QuotaFailure)
    assert quota.violations[0].quota_id == "upstream_ceiling"
    retry = detail(refused, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 30
    assert upstreams.requests("openai-a") == 3 and upstreams.requests("openai-b") == 2


async def test_a_new_version_of_the_file_is_routed_by_and_a_bad_one_changes_nothing(
    upstreams: Upstreams,
) -> None:
    upstreams.write(upstreams.entry("openai-a"))
    async with gateway(upstreams.file) as running:
        assert set(_answered(await _calls(running, 5))) == {"openai-a"}
        upstreams.write(upstreams.entry("openai-b"))
        await _until(lambda: [r.name for r in running_routes(running)] == ["openai-b"])
        assert set(_answered(await _calls(running, 5))) == {"openai-b"}
        upstreams.write("[upstreams.broken]\nweight = 0\n")
        await asyncio.sleep(0.3)  # several polls: each sees the bad version
        assert set(_answered(await _calls(running, 5))) == {"openai-b"}
    assert upstreams.generations("openai-a") == 5 and upstreams.generations("openai-b") == 10


def running_routes(running: Gateway) -> tuple[object, ...]:
    router = running._router
    assert router is not None
    return router.routes


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    assert callable(condition)
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_without_an_upstreams_file_a_client_pinned_elsewhere_reaches_nothing(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    from routing_support import KEYS

    clients = ClientsFile(tmp_path / "clients.toml")
    pinned = clients.add("team-a", upstreams=["openai-a"])
    free = clients.add("team-b")
    emulator = upstreams.emulators["openai-a"]
    single = {
        "openai_api_key": KEYS["openai-a"],
        "openai_base_url": emulator.base_url,
        "clients_file": clients.path,
    }
    async with gateway(None, **single) as running:
        (refused,) = await _calls(running, 1, token=pinned)
        (answered,) = _answered(await _calls(running, 1, token=free))
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert answered == "default"  # the one upstream of the settings
    assert upstreams.requests("openai-a") == 1


async def test_each_attempt_is_a_span_naming_its_upstream(upstreams: Upstreams) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from imagegate_server.tracing.provider import Tracing

    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("azure-eu", priority=1))
    upstreams.emulators["openai-a"].set_faults("429;retry-after=1")
    exporter = InMemorySpanExporter()
    running = Gateway(settings_for(upstreams.file), tracing=Tracing.with_exporter(exporter))
    await running.start()
    try:
        (name,) = _answered(await _calls(running, 1))
    finally:
        await running.stop(0)
    assert name == "azure-eu"
    attempts = [s for s in exporter.get_finished_spans() if s.kind.name == "CLIENT"]
    assert [s.attributes["imagegate.upstream"] for s in attempts] == ["openai-a", "azure-eu"]
    refused, answered = attempts
    assert refused.attributes["http.response.status_code"] == 429
    assert answered.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert answered.attributes["url.full"].endswith(
        f"/openai/deployments/{AZURE_DEPLOYMENT}/images/generations"
    )  # no api-version query in the span


async def test_an_upstreams_own_prices_cost_the_calls_it_answers(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    prices = tmp_path / "azure-prices.toml"
    prices.write_text(
        "version = 2027-01-15\n"
        '[models."gpt-image-2"]\n'
        "text_in = 10.00\ntext_in_cached = 2.50\nimage_in = 16.00\nimage_in_cached = 4.00\n"
        'image_out = 60.00\ntext_out = 20.00\noutput_tokens = "gpt-image-2"\n'
    )
    upstreams.write(
        upstreams.entry("openai-a"), upstreams.entry("azure-eu", prices_file=str(prices))
    )
    async with gateway(upstreams.file) as running:
        replies = await _calls(running, 40)
    costs: dict[str, set[tuple[int, str]]] = {}
    for reply in replies:
        assert isinstance(reply, pb.CreateImageResponse)
        cost = reply.result.cost
        costs.setdefault(reply.result.upstream, set()).add((cost.usd_micros, cost.price_table))
    (openai,) = costs["openai-a"]
    (azure,) = costs["azure-eu"]
    assert azure[0] == 2 * openai[0]  # every rate doubled, the same usage
    assert azure[1].endswith("+2027-01-15") and "+" not in openai[1]
