"""What uploads hold on disk: each client's spooled bytes are capped (refused with
RESOURCE_EXHAUSTED and QuotaFailure), and a call's spool files are gone when it ends,
however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory, chunks_of, detail
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.descriptors import open_files_in
from support.images import png
from tenancy_support import ClientsFile, bearer

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway

IMAGE = params_pb2.FILE_ROLE_IMAGE
KIB = 1024
THRESHOLD = 256 * KIB
WAIT_S = 60.0
# About 770 KB each: incompressible, so past the threshold.
BIG = png(440, 440, mode="RGBA", noise=True, seed=1)


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")


@pytest.fixture
async def channel() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for each in opened:
        await each.close()


def stub_of(
    gateway: Gateway, opened: list[grpc.aio.Channel]
) -> images_service_pb2_grpc.ImagesServiceStub:
    opened.append(grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}"))
    return images_service_pb2_grpc.ImagesServiceStub(opened[-1])


def edit(*images: bytes, declare: bool = True) -> list[pb.CreateImageEditRequest]:
    infos = [
        params_pb2.FileInfo(size_bytes=len(i)) if declare else params_pb2.FileInfo() for i in images
    ]
    parameters = params_pb2.EditParameters(prompt="x", model="gpt-image-2", images=infos)
    chunks = [c for index, image in enumerate(images) for c in chunks_of(IMAGE, image, index)]
    return [
        pb.CreateImageEditRequest(parameters=parameters),
        *(pb.CreateImageEditRequest(chunk=c) for c in chunks),
    ]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` every 20 ms, for at most WAIT_S."""
    for _ in range(int(WAIT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still waiting for {what} after {WAIT_S:g} s")


def quota_violation(error: grpc.aio.AioRpcError) -> error_details_pb2.QuotaFailure.Violation:
    failure = detail(error, error_details_pb2.QuotaFailure)
    assert isinstance(failure, error_details_pb2.QuotaFailure), error
    (violation,) = failure.violations
    return violation


async def held_upload(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    messages: list[pb.CreateImageEditRequest],
    token: str,
) -> grpc.aio.StreamUnaryCall:  # type: ignore[type-arg]
    """An upload that sent everything but did not half-close: it holds its spool."""
    call = stub.CreateImageEdit(metadata=bearer(token), timeout=WAIT_S)
    await call.write(messages[0])
    assert ("x-imagegate-upload", "accepted") in tuple(await call.initial_metadata())
    for message in messages[1:]:
        await call.write(message)
    return call


async def refused_before_go_ahead(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    messages: list[pb.CreateImageEditRequest],
    token: str | None = None,
) -> grpc.aio.AioRpcError:
    call = stub.CreateImageEdit(metadata=bearer(token) if token else (), timeout=WAIT_S)
    await call.write(messages[0])
    headers = tuple(await call.initial_metadata())
    assert ("x-imagegate-upload", "accepted") not in headers
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, WAIT_S)
    return caught.value


async def test_a_clients_spooled_bytes_are_capped_before_the_go_ahead(
    start_gateway: GatewayFactory,
    clients: ClientsFile,
    emulator: Emulator,
    tmp_path: Path,
    channel: list[grpc.aio.Channel],
) -> None:
    token = clients.add("team-a", max_spooled_bytes="1 MiB")
    other = clients.add("team-b", max_spooled_bytes="1 MiB")
    gateway = await start_gateway(
        clients_file=clients.path, spool_threshold_bytes=THRESHOLD, spool_dir=tmp_path / "spool"
    )
    stub = stub_of(gateway, channel)
    # One call that alone declares more than the cap can never pass.
    error = await refused_before_go_ahead(stub, edit(BIG, BIG), token)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    violation = quota_violation(error)
    assert (violation.subject, violation.quota_id) == ("client:team-a", "max_spooled_bytes")
    assert detail(error, error_details_pb2.RetryInfo) is None
    # One that fits, held open; a second of the same client does not fit beside it ...
    first = await held_upload(stub, edit(BIG), token)
    error = await refused_before_go_ahead(stub, edit(BIG), token)
    assert quota_violation(error).quota_id == "max_spooled_bytes"
    assert "retry when one of its uploads ends" in (error.details() or "")
    # ... but another client's does: the cap is each client's own.
    await (await held_upload(stub, edit(BIG), other)).done_writing()
    await first.done_writing()
    assert (await asyncio.wait_for(first, WAIT_S)).result.images
    # The first call ended: its share is back.
    reply = await stub.CreateImageEdit(edit(BIG), metadata=bearer(token), timeout=WAIT_S)
    assert reply.result.images
    refusals = gateway.metrics.registry.get_sample_value(
        "imagegate_limit_refusals_total", {"limit": "max_spooled_bytes", "client": "team-a"}
    )
    assert refusals == 2
    assert len(emulator.journal.by_path("/v1/images/edits")) == 3


async def test_undeclared_bytes_over_the_cap_are_refused_as_they_arrive(
    start_gateway: GatewayFactory, clients: ClientsFile, tmp_path: Path
) -> None:
    token = clients.add("team-a", max_spooled_bytes=500 * KIB)
    gateway = await start_gateway(
        clients_file=clients.path, spool_threshold_bytes=THRESHOLD, spool_dir=tmp_path / "spool"
    )
    messages = edit(BIG, declare=False)  # nothing reserved ahead: refused mid-upload

    def call() -> grpc.RpcError:
        # The sync client: a refusal mid-upload of bytes nobody declared is answered
        # at once, which grpc's asyncio client may misreport (grpc/grpc#36066).
        with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as sync_channel:
            sync_stub = images_service_pb2_grpc.ImagesServiceStub(sync_channel)
            with pytest.raises(grpc.RpcError) as caught:
                sync_stub.CreateImageEdit(iter(messages), metadata=bearer(token), timeout=WAIT_S)
            return caught.value

    error = await asyncio.to_thread(call)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    violation = quota_violation(error)  # type: ignore[arg-type]
    assert (violation.subject, violation.quota_id) == ("client:team-a", "max_spooled_bytes")


@pytest.mark.parametrize("ending", ["done", "cancelled", "stalled", "deadline", "refused"])
async def test_spool_files_are_gone_when_the_call_ends_however_it_ends(
    start_gateway: GatewayFactory, tmp_path: Path, channel: list[grpc.aio.Channel], ending: str
) -> None:
    spool_dir = tmp_path / "spool"
    gateway = await start_gateway(
        spool_threshold_bytes=THRESHOLD, spool_dir=spool_dir, upload_idle_timeout_s=1
    )
    stub = stub_of(gateway, channel)
    # Two large images, then (for "refused") a mask that is no PNG.
    parameters = params_pb2.EditParameters(
        prompt="x",
        model="gpt-image-2",
        images=[params_pb2.FileInfo(size_bytes=len(BIG))] * 2,
        mask=params_pb2.FileInfo(size_bytes=64 * KIB),
    )
    mask = b"\xff\xd8\xff\xe0" + bytes(64 * KIB - 4) if ending == "refused" else png(440, 440)
    if ending != "refused":
        parameters.mask.size_bytes = len(mask)
    messages = [pb.CreateImageEditRequest(parameters=parameters)] + [
        pb.CreateImageEditRequest(chunk=c)
        for c in [*chunks_of(IMAGE, BIG, 0), *chunks_of(IMAGE, BIG, 1)]
    ]
    timeout = 3 if ending == "deadline" else WAIT_S
    call = stub.CreateImageEdit(timeout=timeout)
    await call.write(messages[0])
    await call.initial_metadata()
    for message in messages[1:]:
        await call.write(message)
    await until(lambda: len(open_files_in(spool_dir)) >= 1, "a spool file")
    assert all(target.endswith("(deleted)") for target in open_files_in(spool_dir))
    assert list(spool_dir.iterdir()) == []  # unlinked from the start
    mask_chunks = chunks_of(params_pb2.FILE_ROLE_MASK, mask)
    if ending == "done":
        for piece in mask_chunks:
            await call.write(pb.CreateImageEditRequest(chunk=piece))
        await call.done_writing()
        assert (await asyncio.wait_for(call, WAIT_S)).result.images
    elif ending == "cancelled":
        call.cancel()
    elif ending == "refused":
        for piece in mask_chunks:
            await call.write(pb.CreateImageEditRequest(chunk=piece))
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call, WAIT_S)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:  # stalled (the idle timeout) or its deadline passes: either ends it
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call, WAIT_S)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await until(lambda: not open_files_in(spool_dir), "no spool file")
    await until(
        lambda: gateway.metrics.registry.get_sample_value("imagegate_upload_spool_bytes") == 0,
        "nothing spooled",
    )


async def test_declared_sizes_over_the_request_cap_are_refused_before_any_byte(
    start_gateway: GatewayFactory, channel: list[grpc.aio.Channel]
) -> None:
    gateway = await start_gateway(max_request_bytes=100_000)
    small = png(64, 64)
    messages = edit(small, small)
    messages[0].parameters.images[0].size_bytes = 60_000  # each under its file cap,
    messages[0].parameters.images[1].size_bytes = 60_000  # together over the request's
    error = await refused_before_go_ahead(stub_of(gateway, channel), messages)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert quota_violation(error).subject == "upload bytes per request"
