"""Uploads that stall: they count against max_concurrent from the moment they are
authenticated, and end in time (no first message, nothing more mid-upload),
with DEADLINE_EXCEEDED naming which wait ran out; what they held is freed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory, chunks_of, detail
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc
from limits.redis_support import RedisServer
from support.images import png
from tenancy_support import ClientsFile, bearer

from imagegate_server.gateway.server import Gateway

IMAGE = params_pb2.FILE_ROLE_IMAGE
Connect = Callable[[Gateway], grpc.aio.Channel]
# Every wait of these tests ends by this bound (a test that hangs fails instead).
WAIT_S = 60.0


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``connect(gateway)``: a channel to it, closed when the test ends."""
    opened: list[grpc.aio.Channel] = []

    def open_channel(gateway: Gateway) -> grpc.aio.Channel:
        opened.append(grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}"))
        return opened[-1]

    yield open_channel
    for channel in opened:
        await channel.close()


def edit_parameters(image: bytes) -> pb.CreateImageEditRequest:
    info = params_pb2.FileInfo(size_bytes=len(image))
    parameters = params_pb2.EditParameters(prompt="x", model="gpt-image-2", images=[info])
    return pb.CreateImageEditRequest(parameters=parameters)


def whole_edit(image: bytes | None = None) -> list[pb.CreateImageEditRequest]:
    image = image if image is not None else png(32, 32, mode="RGB")
    chunks = [pb.CreateImageEditRequest(chunk=c) for c in chunks_of(IMAGE, image)]
    return [edit_parameters(image), *chunks]


def sample(gateway: Gateway, name: str, **labels: str) -> float:
    return gateway.metrics.registry.get_sample_value(name, labels) or 0.0


async def status_of(call: grpc.aio.StreamUnaryCall) -> grpc.aio.AioRpcError:  # type: ignore[type-arg]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, WAIT_S)
    return caught.value


def reason_of(error: grpc.aio.AioRpcError) -> str:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo), error
    return info.reason


@pytest.fixture(params=["memory", "redis"])
def limiter_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    """The gateway settings of each limiter backend (Redis: a redis-server of the test's)."""
    if request.param == "memory":
        yield {}
        return
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        yield {"redis_url": server.url}


async def test_streams_that_send_nothing_hold_at_most_max_concurrent_and_end_in_time(
    start_gateway: GatewayFactory,
    clients: ClientsFile,
    connect: Connect,
    limiter_settings: dict[str, object],
) -> None:
    token = clients.add("team-a", max_concurrent=4)
    gateway = await start_gateway(
        clients_file=clients.path, first_message_timeout_s=8, **limiter_settings
    )
    channel = connect(gateway)
    stub = images_service_pb2_grpc.ImagesServiceStub(channel)
    # 50 upload streams on one connection that never send their first message.
    calls = [stub.CreateImageEdit(metadata=bearer(token), timeout=WAIT_S) for _ in range(50)]
    pending = {asyncio.ensure_future(call.code()): call for call in calls}
    finished: list[grpc.aio.StreamUnaryCall] = []  # type: ignore[type-arg]
    async with asyncio.timeout(WAIT_S):
        while len(finished) < 46:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            finished += [pending.pop(task) for task in done]
    # The 46 over the limit were refused without waiting for anything ...
    assert len(finished) == 46 and len(pending) == 4
    for call in finished:
        error = await status_of(call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        quota = detail(error, error_details_pb2.QuotaFailure)
        assert isinstance(quota, error_details_pb2.QuotaFailure)
        assert quota.violations[0].quota_id == "concurrent_calls"
    # ... while the 4 admitted hold the client's slots, as calls in flight do.
    quota_stub = quota_pb2_grpc.QuotaServiceStub(channel)
    state = await quota_stub.GetQuota(quota_pb2.GetQuotaRequest(), metadata=bearer(token))
    assert state.concurrency.in_use == 4
    # They end at the first-message timeout with a status that says so.
    for call in pending.values():
        error = await status_of(call)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert reason_of(error) == "FIRST_MESSAGE_TIMEOUT"
    assert sample(gateway, "imagegate_streams_closed_total", reason="first_message_timeout") == 4
    refusals = sample(
        gateway, "imagegate_limit_refusals_total", limit="concurrent_calls", client="team-a"
    )
    assert refusals == 46
    # Their slots are free again: a real upload passes.
    reply = await stub.CreateImageEdit(whole_edit(), metadata=bearer(token), timeout=WAIT_S)
    assert reply.result.images


async def test_a_slot_is_held_from_authentication_before_the_parameters_arrive(
    start_gateway: GatewayFactory, clients: ClientsFile, connect: Connect
) -> None:
    token = clients.add("team-a", max_concurrent=1)
    gateway = await start_gateway(clients_file=clients.path)
    stub = images_service_pb2_grpc.ImagesServiceStub(connect(gateway))
    waiting = stub.CreateImageEdit(metadata=bearer(token), timeout=WAIT_S)
    await waiting.wait_for_connection()
    # The stream has said nothing yet, but it is a call in flight: a generation waits.
    generation = pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(prompt="x", model="gpt-image-2")
    )
    refused = await status_of(stub.CreateImage(generation, metadata=bearer(token), timeout=WAIT_S))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Its parameters may come late (within the timeout): its admission takes the slot over.
    for message in whole_edit():
        await waiting.write(message)
    await waiting.done_writing()
    reply = await asyncio.wait_for(waiting, WAIT_S)
    assert reply.result.images
    await stub.CreateImage(generation, metadata=bearer(token), timeout=WAIT_S)  # freed


async def test_anonymous_streams_that_send_nothing_end_at_the_first_message_timeout(
    start_gateway: GatewayFactory, connect: Connect
) -> None:
    gateway = await start_gateway(first_message_timeout_s=1)
    stub = images_service_pb2_grpc.ImagesServiceStub(connect(gateway))
    calls = [stub.CreateImageVariationStream(timeout=WAIT_S) for _ in range(5)]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async with asyncio.timeout(WAIT_S):
                async for _ in call:
                    pass
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert reason_of(caught.value) == "FIRST_MESSAGE_TIMEOUT"
        assert "no parameters message within 1 s" in (caught.value.details() or "")


async def test_an_upload_stalled_mid_way_ends_and_frees_its_slot(
    start_gateway: GatewayFactory, clients: ClientsFile, connect: Connect
) -> None:
    token = clients.add("team-a", max_concurrent=1)
    gateway = await start_gateway(clients_file=clients.path, upload_idle_timeout_s=1)
    stub = images_service_pb2_grpc.ImagesServiceStub(connect(gateway))
    image = png(256, 256, mode="RGB", noise=True)
    first, *chunks = whole_edit(image)
    stalled = stub.CreateImageEdit(metadata=bearer(token), timeout=WAIT_S)
    await stalled.write(first)
    assert ("x-imagegate-upload", "accepted") in tuple(await stalled.initial_metadata())
    await stalled.write(chunks[0])  # one chunk of several, then nothing
    error = await status_of(stalled)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert reason_of(error) == "UPLOAD_STALLED"
    assert sample(gateway, "imagegate_streams_closed_total", reason="upload_stalled") == 1
    reply = await stub.CreateImageEdit(whole_edit(), metadata=bearer(token), timeout=WAIT_S)
    assert reply.result.images
