"""Request ids (AIP-155) on the synchronous RPCs, through a real gateway and emulator:
a call whose caller goes away still finishes, and its retry collects it (one upstream
request, one charge); another request under the same id is ALREADY_EXISTS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from jobs_support import OPENAI_KEY, bad_request_fields, new_request_id
from support.gateways import started_gateways

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.emulator.config import LatencyModel
from imagegate_server.gateway.server import Gateway

GENERATIONS = "/v1/images/generations"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An upstream that takes 2 s per generation."""
    config = EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True, latency=LatencyModel(2.0, 0))
    async with Emulator(config) as running:
        yield running


@pytest.fixture
async def gateway(emulator: Emulator) -> AsyncIterator[Gateway]:
    async with started_gateways(OPENAI_KEY, emulator.base_url) as start:
        yield await start()


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[images_service_pb2_grpc.ImagesServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield images_service_pb2_grpc.ImagesServiceStub(channel)


def _create(prompt: str = "a lighthouse", request_id: str = "") -> pb.CreateImageRequest:
    parameters = params_pb2.GenerationParameters(
        prompt=prompt, model="gpt-image-2", quality=params_pb2.QUALITY_LOW, size="1024x1024"
    )
    return pb.CreateImageRequest(parameters=parameters, request_id=request_id)


def _generations(emulator: Emulator) -> int:
    return sum(entry.path.endswith(GENERATIONS) for entry in emulator.journal.entries)


async def test_a_retry_after_a_deadline_collects_the_first_call(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    request_id = new_request_id()
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await stub.CreateImage(_create(request_id=request_id), timeout=0.75)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reply = await stub.CreateImage(_create(request_id=request_id), timeout=30)
    assert reply.result.images[0].data.startswith(b"\x89PNG")
    assert _generations(emulator) == 1
    entry = next(e for e in emulator.journal.entries if e.path.endswith(GENERATIONS))
    assert not entry.has_event("client_disconnected")  # the first call was not aborted
    # Later, within retention: the same answer again, still no second request.
    again = await stub.CreateImage(_create(request_id=request_id), timeout=30)
    assert again.result.images[0].data == reply.result.images[0].data
    assert again.result.cost.usd_micros == reply.result.cost.usd_micros
    assert _generations(emulator) == 1


async def test_without_a_request_id_a_caller_that_leaves_aborts_the_upstream_request(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateImage(_create(), timeout=0.75)
    await stub.CreateImage(_create(), timeout=30)
    assert _generations(emulator) == 2
    first = next(e for e in emulator.journal.entries if e.path.endswith(GENERATIONS))
    for _ in range(50):
        if first.has_event("client_disconnected"):
            break
        await asyncio.sleep(0.1)
    assert first.has_event("client_disconnected")


async def test_concurrent_duplicates_make_one_upstream_request(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    request_id = new_request_id()
    replies = await asyncio.gather(
        *(stub.CreateImage(_create(request_id=request_id), timeout=30) for _ in range(4))
    )
    assert len({reply.result.images[0].data for reply in replies}) == 1
    assert _generations(emulator) == 1


async def test_the_same_request_id_with_another_prompt_is_already_exists(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    request_id = new_request_id()
    await stub.CreateImage(_create(request_id=request_id), timeout=30)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateImage(_create("a fox", request_id=request_id), timeout=30)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert bad_request_fields(refused.value) == ["parameters.prompt"]
    assert _generations(emulator) == 1


async def test_a_malformed_request_id_is_invalid_argument(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateImage(_create(request_id="not-a-uuid"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(refused.value) == ["request_id"]
    assert _generations(emulator) == 0


async def test_a_stream_call_with_a_request_id_is_collected_by_its_retry(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    request_id = new_request_id()
    request = pb.CreateImageStreamRequest(parameters=_create().parameters, request_id=request_id)
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in stub.CreateImageStream(request, timeout=0.75):
            pass
    data = bytearray()
    async for message in stub.CreateImageStream(request, timeout=30):
        if message.HasField("image_chunk"):
            data += message.image_chunk.data
    assert bytes(data).startswith(b"\x89PNG")
    assert _generations(emulator) == 1


async def test_a_failure_openai_did_not_bill_is_not_kept(
    stub: images_service_pb2_grpc.ImagesServiceStub, emulator: Emulator
) -> None:
    emulator.set_faults("400;first=1")  # OpenAI refuses the first request: nothing billed
    request_id = new_request_id()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateImage(_create(request_id=request_id), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reply = await stub.CreateImage(_create(request_id=request_id), timeout=30)
    assert reply.result.images[0].data.startswith(b"\x89PNG")
    assert _generations(emulator) == 2
