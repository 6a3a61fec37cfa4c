"""Failures on the *Stream RPCs, the overall deadline of a call, and the ids every
call carries back (trailers) and into the logs."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from gateway_support import (
    GatewayFactory,
    chunks_of,
    detail,
    edit_requests,
    error_trailer,
    trailer,
    upstream_disconnected,
)
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from PIL import Image
from support.images import png

from imagegate_server.emulator import Emulator

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
IMAGE, MASK = params_pb2.FILE_ROLE_IMAGE, params_pb2.FILE_ROLE_MASK
STREAM_REQUEST = pb.CreateImageStreamRequest(
    parameters=params_pb2.GenerationParameters(
        prompt="a cat", model="gpt-image-2", partial_images=2
    )
)
REQUEST = pb.CreateImageRequest(
    parameters=params_pb2.GenerationParameters(prompt="a cat", model="gpt-image-2")
)


async def _fail_stream(
    stub: images_service_pb2_grpc.ImagesServiceStub, **kwargs: object
) -> tuple[grpc.aio.AioRpcError, int]:
    """The stream's error and how many messages arrived before it."""
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.CreateImageStream(STREAM_REQUEST, **kwargs):  # type: ignore[arg-type]
            received += 1
    return caught.value, received


def _reason(error: grpc.aio.AioRpcError) -> str:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    return info.reason


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("503", grpc.StatusCode.UNAVAILABLE),
        ("moderation", grpc.StatusCode.INVALID_ARGUMENT),
        ("429;retry-after=30", grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
async def test_an_upstream_error_status_ends_a_stream_rpc_with_its_code(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    emulator: Emulator,
    fault: str,
    code: grpc.StatusCode,
) -> None:
    emulator.set_faults(fault)
    error, received = await _fail_stream(stub)
    assert error.code() == code and received == 0
    (entry, *_) = emulator.journal.by_path(GENERATIONS)
    assert error_trailer(error, "x-upstream-request-id") == entry.request_id


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        ("stream-error;after=1", grpc.StatusCode.UNAVAILABLE, "server_error"),
        # A content-policy rejection mid-stream is the caller's, not a retryable outage.
        ("stream-moderation;after=1", grpc.StatusCode.INVALID_ARGUMENT, "moderation_blocked"),
    ],
)
async def test_a_mid_stream_error_event_maps_like_its_http_twin(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    emulator: Emulator,
    fault: str,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    emulator.set_faults(fault)
    error, received = await _fail_stream(stub)
    assert received >= 1  # the first partial image arrived before the error
    assert error.code() == code
    assert _reason(error) == reason
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert error_trailer(error, "x-upstream-request-id") == entry.request_id


async def test_upstream_timeout_bounds_a_whole_stream_not_each_read(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    # Events every 0.75 s: no single read waits 1 s, the whole answer takes 3 s.
    gateway = await start_gateway(upstream_timeout_s=1)
    emulator.set_faults("latency;ms=3000")
    request = pb.CreateImageStreamRequest(
        parameters=params_pb2.GenerationParameters(
            prompt="x", model="gpt-image-2", partial_images=3
        )
    )
    started = time.monotonic()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.CreateImageStream(request):
                pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.5
    await upstream_disconnected(emulator)


async def test_upstream_timeout_bounds_a_stalled_upload_on_a_stream_rpc(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway(upstream_timeout_s=1)
    parameters = params_pb2.EditParameters(
        prompt="x", model="gpt-image-2", images=[params_pb2.FileInfo()]
    )

    async def stalled() -> AsyncIterator[pb.CreateImageEditStreamRequest]:
        yield pb.CreateImageEditStreamRequest(parameters=parameters)
        await asyncio.sleep(30)  # a client that never finishes its upload

    started = time.monotonic()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.CreateImageEditStream(stalled()):
                pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5
    assert emulator.journal.entries == []


async def test_a_unary_success_returns_both_request_ids(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    call = stub.CreateImage(REQUEST)
    await call
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert await trailer(call, "x-upstream-request-id") == entry.request_id
    assert await trailer(call, "x-request-id")


async def test_a_result_too_large_keeps_the_upstream_request_id(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    # Two 1024x1024 noise edits: over 4 MiB, the smallest unary limit allowed.
    source = png(1024, 1024, mode="RGB", noise=True)
    parameters = params_pb2.EditParameters(
        prompt="x", model="gpt-image-2", n=2, size="1024x1024", images=[params_pb2.FileInfo()]
    )
    roomy = await start_gateway(max_send_message_bytes=64 * 1024 * 1024)
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{roomy.port}", options=options) as channel:
        reply = await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImageEdit(
            edit_requests(parameters, chunks_of(IMAGE, source))
        )
    assert Image.open(io.BytesIO(reply.result.images[0].data)).size == (1024, 1024)
    # The limit is on the message sent: the response, a few bytes more than its result.
    limit = reply.ByteSize() - 2
    assert reply.result.ByteSize() < limit
    tight = await start_gateway(max_send_message_bytes=limit)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tight.port}", options=options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImageEdit(
                edit_requests(parameters, chunks_of(IMAGE, source))
            )
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "CreateImageEditStream" in (error.details() or "")
    second = emulator.journal.by_path(EDITS)[-1]
    assert error_trailer(error, "x-upstream-request-id") == second.request_id
    assert error_trailer(error, "x-request-id")


async def test_a_default_client_is_told_to_use_the_stream_rpc_for_a_large_result(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    # Over gRPC's default 4 MiB: the gateway's default unary limit is the same, so the
    # caller gets its message naming the stream RPC, not its library's generic error.
    source = png(1024, 1024, mode="RGB", noise=True)
    parameters = params_pb2.EditParameters(
        prompt="x", model="gpt-image-2", n=2, size="1024x1024", images=[params_pb2.FileInfo()]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImageEdit(edit_requests(parameters, chunks_of(IMAGE, source)))
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "use CreateImageEditStream" in (error.details() or "")
    assert "larger than max" not in (error.details() or "")


def _finished(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "rpc finished"]


async def test_the_callers_request_id_is_logged_and_returned(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="imagegate_server")
    call = stub.CreateImage(REQUEST, metadata=(("x-request-id", "caller-42.a"),))
    await call
    (entry,) = emulator.journal.by_path(GENERATIONS)
    (record,) = _finished(caplog)
    assert record.__dict__["request_id"] == "caller-42.a"
    assert record.__dict__["upstream_request_id"] == entry.request_id
    assert await trailer(call, "x-request-id") == "caller-42.a"


async def test_a_failed_call_logs_a_generated_id_when_the_callers_is_not_sane(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="imagegate_server")
    emulator.set_faults("500")
    insane = "x" * 200
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(REQUEST, metadata=(("x-request-id", insane),))
    (entry,) = emulator.journal.by_path(GENERATIONS)
    (record,) = _finished(caplog)
    request_id = record.__dict__["request_id"]
    assert request_id != insane and 8 <= len(request_id) <= 64
    assert record.__dict__["code"] == "UNAVAILABLE"
    assert record.__dict__["upstream_request_id"] == entry.request_id
    assert error_trailer(caught.value, "x-request-id") == request_id


async def test_a_result_a_client_refuses_is_logged_with_its_size_and_no_error(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The operator raised the unary limit; this caller kept gRPC's default 4 MiB. Its
    # library refuses the result after gRPC sent it, which the gateway cannot see: the
    # log line says how large the result was, and nothing is logged as an error.
    source = png(1024, 1024, mode="RGB", noise=True)
    parameters = params_pb2.EditParameters(
        prompt="x", model="gpt-image-2", n=2, size="1024x1024", images=[params_pb2.FileInfo()]
    )
    roomy = await start_gateway(max_send_message_bytes=64 * 1024 * 1024)
    caplog.set_level(logging.INFO)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{roomy.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImageEdit(
                edit_requests(parameters, chunks_of(IMAGE, source))
            )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    (finished,) = [r for r in caplog.records if r.getMessage() == "rpc finished"]
    assert finished.__dict__["result_bytes"] > 4 * 1024 * 1024
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
