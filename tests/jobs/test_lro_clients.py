"""google-api-core's long-running operations client, as it is, against a real gateway:
the Operation a submit returns polls to its ImagesResult, its metadata decodes, a
cancel ends it, ListOperations pages through the caller's operations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.api_core import exceptions, operation, operations_v1
from imagegate.v1 import jobs_pb2, jobs_pb2_grpc, results_pb2
from jobs_support import OPENAI_KEY, generation_job
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


def _api_core_session(port: int) -> tuple[bytes, list[str], bool]:
    """What a caller using google-api-core sees (sync gRPC, in a thread)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        submitted = jobs_pb2_grpc.ImageJobsServiceStub(channel).SubmitImageJob(
            generation_job("a lighthouse"), timeout=30
        )
        client = operations_v1.OperationsClient(channel)
        future = operation.from_gapic(
            submitted, client, results_pb2.ImagesResult, metadata_type=jobs_pb2.ImageJobMetadata
        )
        result = future.result(timeout=60)
        assert isinstance(future.metadata, jobs_pb2.ImageJobMetadata)
        assert future.metadata.state == jobs_pb2.JOB_STATE_SUCCEEDED
        listed = [op.name for op in client.list_operations("operations", "")]
        client.delete_operation(submitted.name)
        try:
            client.get_operation(submitted.name)
            forgotten = False
        except exceptions.NotFound:
            forgotten = True
        return result.images[0].stored.url.encode(), [*listed, submitted.name], forgotten


async def test_google_api_core_polls_a_job_to_its_result(gateway: Gateway) -> None:
    url, names, forgotten = await asyncio.to_thread(_api_core_session, gateway.port)
    assert url.startswith(b"http")
    assert names[-1] in names[:-1]  # the submitted operation was listed
    assert forgotten


def _cancelled_by_api_core(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        submitted = jobs_pb2_grpc.ImageJobsServiceStub(channel).SubmitImageJob(
            generation_job("slow"), timeout=30
        )
        client = operations_v1.OperationsClient(channel)
        future = operation.from_gapic(
            submitted, client, results_pb2.ImagesResult, metadata_type=jobs_pb2.ImageJobMetadata
        )
        assert future.cancel()
        with pytest.raises(exceptions.Cancelled):
            future.result(timeout=30)
        return bool(future.cancelled())


async def test_google_api_core_cancels_a_job(gateway: Gateway, emulator: Emulator) -> None:
    emulator.set_faults("latency;ms=30000")
    assert await asyncio.to_thread(_cancelled_by_api_core, gateway.port)
