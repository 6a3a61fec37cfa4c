"""The error table, retries, deadlines and cancellation, against injected upstream faults.

One test per row of the table in imagegate_server/gateway/edge/status.py (and the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Iterator

import grpc
import pytest
from aiohttp import web
from gateway_support import (
    NEWER_MODEL,
    OPENAI_KEY,
    GatewayFactory,
    detail,
    error_trailer,
    rich_status,
    upstream_disconnected,
)
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2

from imagegate_server.emulator import Emulator, EmulatorConfig

GENERATIONS = "/v1/images/generations"
REQUEST = pb.CreateImageRequest(
    parameters=params_pb2.GenerationParameters(prompt="a cat", model="gpt-image-2")
)


async def _fail(
    stub: images_service_pb2_grpc.ImagesServiceStub, **kwargs: object
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(REQUEST, **kwargs)  # type: ignore[arg-type]
    return caught.value


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    return info


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        ("moderation", grpc.StatusCode.INVALID_ARGUMENT, "moderation_blocked"),
        ("401", grpc.StatusCode.INTERNAL, "UPSTREAM_AUTHENTICATION"),
        ("413", grpc.StatusCode.INVALID_ARGUMENT, "request_too_large"),
        ("422", grpc.StatusCode.INVALID_ARGUMENT, "invalid_value"),
        ("403", grpc.StatusCode.PERMISSION_DENIED, None),
        ("404", grpc.StatusCode.NOT_FOUND, None),
        ("quota", grpc.StatusCode.RESOURCE_EXHAUSTED, "insufficient_quota"),
        ("500", grpc.StatusCode.UNAVAILABLE, None),
        ("502", grpc.StatusCode.UNAVAILABLE, None),
        ("503", grpc.StatusCode.UNAVAILABLE, None),
    ],
)
async def test_upstream_error_statuses_map_to_grpc_codes(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    emulator: Emulator,
    fault: str,
    code: grpc.StatusCode,
    reason: str | None,
) -> None:
    emulator.set_faults(fault)
    error = await _fail(stub)
    assert error.code() == code
    info = _error_info(error)
    if reason:
        assert info.reason == reason
    (entry,) = emulator.journal.by_path(GENERATIONS)  # never retried: it may have billed
    assert info.metadata["upstream_request_id"] == entry.request_id
    assert error_trailer(error, "x-upstream-request-id") == entry.request_id
    assert not detail(error, error_details_pb2.RetryInfo)
    assert OPENAI_KEY not in (error.details() or "")


async def test_an_upstream_400_names_the_param_and_reason(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    # A model the gateway's table does not know is not validated locally, so the
    # upstream's 400 comes back.
    gateway = await start_gateway()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        client = images_service_pb2_grpc.ImagesServiceStub(channel)
        parameters = params_pb2.GenerationParameters(prompt="x", model=NEWER_MODEL, n=12)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.CreateImage(pb.CreateImageRequest(parameters=parameters))
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = _error_info(error)
    assert info.metadata["param"] == "n" and info.metadata["upstream_status"] == "400"
    assert info.reason  # OpenAI's code or type


async def test_a_model_the_upstream_does_not_serve_is_not_found(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    # Passed through (the gateway's table does not know it either), then refused
    # upstream as OpenAI refuses it: NOT_FOUND, OpenAI's code and words, no retry.
    parameters = params_pb2.GenerationParameters(prompt="x", model="gpt-image2")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))
    error = caught.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == (
        "The model `gpt-image2` does not exist or you do not have access to it."
    )
    info = _error_info(error)
    assert info.reason == "model_not_found" and info.domain == "api.openai.com"
    assert info.metadata["upstream_status"] == "404" and "param" not in info.metadata
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json["model"] == "gpt-image2"
    assert not detail(error, error_details_pb2.RetryInfo)


async def test_rate_limits_carry_retry_info_when_retries_are_used_up(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway(max_retries=0)
    emulator.set_faults("429;retry-after=7")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        error = await _fail(images_service_pb2_grpc.ImagesServiceStub(channel))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = detail(error, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 7


async def test_429_is_retried_honouring_retry_after_ms_then_succeeds(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("429;retry-after-ms=300;first=2")
    reply = await stub.CreateImage(REQUEST)
    assert len(reply.result.images) == 1
    entries = emulator.journal.by_path(GENERATIONS)
    assert [e.status for e in entries] == [429, 429, 200]
    # The retries waited as told (300 ms each), not the 10 ms backoff configured.
    gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(entries)]
    assert min(gaps) >= 0.29, gaps


async def test_a_retry_after_past_the_deadline_is_not_waited_for(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("429;retry-after=5;first=1")
    error = await _fail(stub, timeout=2)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(emulator.journal.by_path(GENERATIONS)) == 1


async def test_insufficient_quota_and_server_errors_are_not_retried(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("quota;first=1")
    assert (await _fail(stub)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    emulator.set_faults("500;first=1")
    assert (await _fail(stub)).code() == grpc.StatusCode.UNAVAILABLE
    assert [e.status for e in emulator.journal.by_path(GENERATIONS)] == [429, 500]


async def test_a_reset_mid_body_is_unavailable_and_not_retried(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("reset;after=64")
    error = await _fail(stub)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert len(emulator.journal.by_path(GENERATIONS)) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_upstream_is_unavailable_after_retries(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(openai_base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        error = await _fail(images_service_pb2_grpc.ImagesServiceStub(channel))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_caller_deadline_bounds_the_upstream_call(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("latency;ms=20000")
    error = await _fail(stub, timeout=0.5)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await upstream_disconnected(emulator)


async def test_the_configured_upstream_timeout_is_deadline_exceeded(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway(upstream_timeout_s=0.3)
    emulator.set_faults("latency;ms=20000")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        error = await _fail(images_service_pb2_grpc.ImagesServiceStub(channel))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "internal" not in (error.details() or "").lower()


async def test_a_cancelled_call_aborts_the_upstream_request(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("latency;ms=20000")
    call = stub.CreateImage(REQUEST)
    await emulator.journal.wait_for(lambda entries: bool(entries), timeout_s=5)
    call.cancel()
    await upstream_disconnected(emulator)
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_cancelled_stream_aborts_the_upstream_stream(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("slow;bytes=512;ms=200")
    parameters = params_pb2.GenerationParameters(prompt="x", model="gpt-image-2", partial_images=3)
    call = stub.CreateImageStream(pb.CreateImageStreamRequest(parameters=parameters))
    await emulator.journal.wait_for(lambda entries: bool(entries), timeout_s=5)
    call.cancel()
    await upstream_disconnected(emulator)


async def test_the_key_never_reaches_callers_or_logs(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    for fault in ("401", "403", "500", "reset;after=10", "429;retry-after=1"):
        emulator.set_faults(fault)
        error = await _fail(stub)
        texts.append(error.details() or "")
        texts.append(rich_status(error).SerializeToString().decode("latin-1"))
        texts.extend(str(value) for _, value in error.trailing_metadata() or ())
    emulator.set_faults("")
    await stub.CreateImage(REQUEST)
    texts.extend(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert caplog.records, "expected the gateway to log calls"
    leaked = [text for text in texts if OPENAI_KEY in text or OPENAI_KEY[-12:] in text]
    assert not leaked


async def test_x_should_retry_true_makes_an_error_retryable(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    # OpenAI vouches that the 503 generated nothing: retrying cannot bill twice.
    emulator.set_faults("503;x-should-retry=true;first=1")
    reply = await stub.CreateImage(REQUEST)
    assert len(reply.result.images) == 1
    assert [e.status for e in emulator.journal.by_path(GENERATIONS)] == [503, 200]


async def test_x_should_retry_false_stops_a_429_retry(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("429;retry-after-ms=10;x-should-retry=false;first=1")
    assert (await _fail(stub)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [e.status for e in emulator.journal.by_path(GENERATIONS)] == [429]


async def test_a_refused_connection_is_retried_until_the_upstream_listens(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="imagegate_server.upstream.client")
    port = _closed_port()
    gateway = await start_gateway(
        openai_base_url=f"http://127.0.0.1:{port}/v1", max_retries=8, retry_backoff_s=0.2
    )
    late = Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        call = images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(REQUEST, timeout=30)
        for _ in range(500):  # the first attempt was refused
            if any(r.getMessage() == "retrying upstream call" for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the gateway did not retry the refused connection")
        await late.start("127.0.0.1", port)
        try:
            reply = await call
            assert len(reply.result.images) == 1
            assert len(late.journal.by_path(GENERATIONS)) == 1
        finally:
            await late.stop()


@pytest.fixture
def unanswering_port() -> Iterator[int]:
    """A port whose accept queue is full: connecting hangs, as to a dead host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in (*fillers, listener):
        sock.close()


async def test_a_connect_timeout_is_unavailable_not_deadline_exceeded(
    start_gateway: GatewayFactory, unanswering_port: int
) -> None:
    # The table's "connect failure -> UNAVAILABLE": the caller's deadline is far off.
    gateway = await start_gateway(
        openai_base_url=f"http://127.0.0.1:{unanswering_port}/v1",
        connect_timeout_s=0.2,
        max_retries=1,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        error = await _fail(images_service_pb2_grpc.ImagesServiceStub(channel), timeout=10)
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_connect_cut_short_by_the_callers_deadline_is_deadline_exceeded(
    start_gateway: GatewayFactory, unanswering_port: int
) -> None:
    gateway = await start_gateway(
        openai_base_url=f"http://127.0.0.1:{unanswering_port}/v1", connect_timeout_s=5
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        error = await _fail(images_service_pb2_grpc.ImagesServiceStub(channel), timeout=0.5)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_organization_and_project_headers_reach_openai(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway(openai_organization="org-imagegate", openai_project="proj_42")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(REQUEST)
    (entry,) = emulator.journal.by_path(GENERATIONS)
    headers = {name.lower(): value for name, value in entry.headers.items()}
    assert headers["openai-organization"] == "org-imagegate"
    assert headers["openai-project"] == "proj_42"


async def test_a_key_of_any_shape_quoted_by_the_upstream_is_redacted(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # An OpenAI-compatible server that quotes the key it was sent in its error message
    # (for a 400 the message is relayed to the caller and into the log line).
    key = "local-proxy-key-7Fq2vX9w"  # not shaped like sk-...
    seen: list[str] = []

    async def quote_key(request: web.Request) -> web.Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.append(sent)
        error = {"message": f"Key {sent} may not use this model", "type": "invalid_request_error"}
        return web.json_response({"error": error}, status=400)

    app = web.Application()
    app.router.add_post("/v1/images/generations", quote_key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        caplog.set_level(logging.INFO)
        gateway = await start_gateway(
            openai_api_key=key, openai_base_url=f"http://127.0.0.1:{port}/v1"
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            error = await _fail(images_service_pb2_grpc.ImagesServiceStub(channel))
    finally:
        await runner.cleanup()
    assert seen == [key]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "may not use this model" in (error.details() or "")
    texts = [error.details() or "", rich_status(error).SerializeToString().decode("latin-1")]
    texts.extend(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert any("may not use this model" in text for text in texts[2:]), "no log line"
    assert not [text for text in texts if key in text]
