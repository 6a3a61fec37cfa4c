"""A refusal mid-upload is answered once the caller has sent what it declared (so that
grpc's asyncio client, done writing, reads the real status), and only within bounds:
the bytes the caller still owes, and IMAGEGATE_REJECTED_UPLOAD_READ_S."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from gateway_support import GatewayFactory, edit_requests, rejected_upload, violations
from imagegate.v1 import images_service_pb2_grpc, params_pb2

from imagegate_server.gateway.server import Gateway

IMAGE = params_pb2.FILE_ROLE_IMAGE
CHUNK = 64 * 1024
WAIT_S = 60.0
# Text where an image must be: refused at the first chunk, after the go-ahead.
TEXT_HEAD = b"plain text, not an image\n".ljust(CHUNK, b".")
FILLER = bytes(CHUNK)


def image_upload(sent_chunks: int) -> list[params_pb2.FileChunk]:
    return [
        params_pb2.FileChunk(role=IMAGE, data=TEXT_HEAD),
        *[params_pb2.FileChunk(role=IMAGE, data=FILLER)] * (sent_chunks - 1),
    ]


def parameters(declared_chunks: int) -> params_pb2.EditParameters:
    info = params_pb2.FileInfo(size_bytes=declared_chunks * CHUNK)
    return params_pb2.EditParameters(prompt="x", model="gpt-image-2", images=[info])


def closed(gateway: Gateway, reason: str) -> float:
    sample = gateway.metrics.registry.get_sample_value(
        "imagegate_streams_closed_total", {"reason": reason}
    )
    return sample or 0.0


async def test_the_rest_of_a_refused_upload_is_read_before_the_answer(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()
    stream = edit_requests(parameters(40), image_upload(40))
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.images[0]" in violations(error)
    assert stream.pulled == 41  # the parameters and every chunk: the caller finished
    assert closed(gateway, "refused_drained") == 1


async def test_no_more_than_the_declared_bytes_are_read(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()
    # Declares 2 chunks, sends 200 (12.5 MiB): answered once the 2 are read and more come.
    stream = edit_requests(parameters(2), image_upload(200))
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stream.pulled < 40, stream.pulled  # allowing for gRPC's flow-control window
    assert closed(gateway, "refused_cut") == 1


async def test_a_caller_that_stops_sending_is_answered_after_the_read_time(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(rejected_upload_read_s=0.5, upload_idle_timeout_s=WAIT_S)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        call = stub.CreateImageEdit(timeout=WAIT_S)
        first, jpeg = edit_requests(parameters(40), image_upload(1)).messages
        await call.write(first)
        await call.initial_metadata()
        await call.write(jpeg)  # then nothing, and no half-close
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call, WAIT_S)
    # The refusal itself, not the idle timeout (a minute) nor the deadline.
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert closed(gateway, "refused_cut") == 1


async def test_a_read_time_of_zero_answers_at_once(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rejected_upload_read_s=0)
    stream = edit_requests(parameters(200), image_upload(200))
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stream.pulled < 40, stream.pulled
    assert closed(gateway, "refused_cut") == 1
