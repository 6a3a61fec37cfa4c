"""Jobs through a real gateway and a real emulator, on the embedded default (the
local database): submit, wait, get, list, cancel, delete; bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from imagegate.v1 import jobs_pb2
from jobs_support import (
    OPENAI_KEY,
    bad_request_fields,
    generation_job,
    metadata_of,
    new_request_id,
    result_of,
    stubs,
)
from support.gateways import started_gateways

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


@pytest.fixture
async def gateway(emulator: Emulator) -> AsyncIterator[Gateway]:
    async with started_gateways(OPENAI_KEY, emulator.base_url) as start:
        yield await start()


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield channel


def _wait(name: str, seconds: float) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(
        name=name, timeout=duration_pb2.Duration(seconds=int(seconds))
    )


async def test_a_submitted_job_runs_and_its_result_is_waited_for(
    channel: grpc.aio.Channel, emulator: Emulator
) -> None:
    jobs, operations = stubs(channel)
    submitted = await jobs.SubmitImageJob(generation_job("a lighthouse"), timeout=30)
    assert submitted.name.startswith("operations/")
    assert not submitted.done
    assert metadata_of(submitted).state == jobs_pb2.JOB_STATE_QUEUED
    done = await operations.WaitOperation(_wait(submitted.name, 30), timeout=40)
    assert done.done, done
    meta = metadata_of(done)
    assert meta.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert meta.model == "gpt-image-2" and meta.n == 1
    result = result_of(done)
    assert len(result.images) == 1 and result.images[0].stored.url
    again = await operations.GetOperation(
        operations_pb2.GetOperationRequest(name=submitted.name), timeout=10
    )
    assert again.done and result_of(again).images[0].stored.url
    assert sum(e.path.endswith("/generations") for e in emulator.journal.entries) == 1


async def test_inline_images_come_in_the_response(channel: grpc.aio.Channel) -> None:
    jobs, operations = stubs(channel)
    submitted = await jobs.SubmitImageJob(generation_job(inline=True), timeout=30)
    done = await operations.WaitOperation(_wait(submitted.name, 30), timeout=40)
    data = result_of(done).images[0].data
    assert data.startswith(b"\x89PNG")


async def test_a_repeated_request_id_gets_the_same_operation(
    channel: grpc.aio.Channel, emulator: Emulator
) -> None:
    jobs, operations = stubs(channel)
    request_id = new_request_id()
    first = await jobs.SubmitImageJob(generation_job(request_id=request_id), timeout=30)
    second = await jobs.SubmitImageJob(generation_job(request_id=request_id), timeout=30)
    assert first.name == second.name
    await operations.WaitOperation(_wait(first.name, 30), timeout=40)
    third = await jobs.SubmitImageJob(generation_job(request_id=request_id), timeout=30)
    assert third.name == first.name and third.done
    assert sum(e.path.endswith("/generations") for e in emulator.journal.entries) == 1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await jobs.SubmitImageJob(
            generation_job("another prompt", request_id=request_id), timeout=30
        )
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert bad_request_fields(refused.value) == ["parameters.prompt"]


async def test_bad_names_and_unknown_operations(channel: grpc.aio.Channel) -> None:
    _, operations = stubs(channel)
    for name in (
        "",
        "operations/",
        "operations/not-a-uuid",
        "jobs/0b0f3c8e-5a4d-4c7e-9a57-2f2d3c4b5a69",
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await operations.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(bad.value) == ["name"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await operations.GetOperation(
            operations_pb2.GetOperationRequest(name=f"operations/{new_request_id()}"), timeout=10
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_malformed_request_id_is_refused_naming_the_field(
    channel: grpc.aio.Channel,
) -> None:
    jobs, _ = stubs(channel)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await jobs.SubmitImageJob(generation_job(request_id="retry-1"), timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(bad.value) == ["request_id"]
