"""The queue, cancels, uploads and ownership of jobs, through a real gateway (the local
database) in front of a real emulator, with a clients file of two clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile, bearer
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from imagegate.v1 import jobs_pb2, params_pb2, quota_pb2, quota_pb2_grpc
from jobs_support import OPENAI_KEY, generation_job, metadata_of, result_of, stubs
from support.gateways import started_gateways
from support.images import mask_png, png

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.emulator.config import LatencyModel
from imagegate_server.gateway.edge.status import DETAILS_KEY
from imagegate_server.gateway.server import Gateway

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True, latency=LatencyModel(0.5, 0))
    async with Emulator(config) as running:
        yield running


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")


@pytest.fixture
async def start(emulator: Emulator, clients: ClientsFile) -> AsyncIterator[Callable[..., object]]:
    async with started_gateways(
        OPENAI_KEY, emulator.base_url, clients_file=clients.path
    ) as starting:
        yield starting


async def _channel(gateway: Gateway) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")


def _wait(name: str, seconds: int = 30) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(
        name=name, timeout=duration_pb2.Duration(seconds=seconds)
    )


async def _until(check: Callable[[], object], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def test_jobs_over_max_concurrent_wait_instead_of_being_refused(
    start: Callable[..., object], clients: ClientsFile
) -> None:
    token = clients.add("team-a", max_concurrent=1)
    gateway = await start()  # type: ignore[misc]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        names = [
            (await jobs.SubmitImageJob(generation_job(f"job {i}"), metadata=bearer(token))).name
            for i in range(3)
        ]
        running_at_once = 0
        while True:
            states = [
                metadata_of(
                    await operations.GetOperation(
                        operations_pb2.GetOperationRequest(name=name), metadata=bearer(token)
                    )
                ).state
                for name in names
            ]
            running_at_once = max(running_at_once, states.count(jobs_pb2.JOB_STATE_RUNNING))
            if all(s == jobs_pb2.JOB_STATE_SUCCEEDED for s in states):
                break
            assert not any(s == jobs_pb2.JOB_STATE_FAILED for s in states)
            await asyncio.sleep(0.05)
        assert running_at_once == 1


async def test_a_full_queue_refuses_with_quota_failure(
    start: Callable[..., object], clients: ClientsFile
) -> None:
    token = clients.add("team-a", max_concurrent=1, max_queued_jobs=2)
    gateway = await start()  # type: ignore[misc]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        first = await jobs.SubmitImageJob(generation_job("first"), metadata=bearer(token))

        async def running() -> bool:
            op = await operations.GetOperation(
                operations_pb2.GetOperationRequest(name=first.name), metadata=bearer(token)
            )
            return metadata_of(op).state == jobs_pb2.JOB_STATE_RUNNING

        await _until(running)
        for prompt in ("second", "third"):
            await jobs.SubmitImageJob(generation_job(prompt), metadata=bearer(token))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await jobs.SubmitImageJob(generation_job("fourth"), metadata=bearer(token))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        quota = quota_pb2_grpc.QuotaServiceStub(channel)
        shown = await quota.GetQuota(quota_pb2.GetQuotaRequest(), metadata=bearer(token))
        assert (shown.jobs.queued, shown.jobs.running, shown.jobs.max_queued) == (2, 1, 2)
    failure = _detail(refused.value, error_details_pb2.QuotaFailure())
    assert failure.violations[0].quota_id == "max_queued_jobs"


async def test_clients_take_turns(start: Callable[..., object], clients: ClientsFile) -> None:
    busy = clients.add("busy", max_queued_jobs=50)
    quiet = clients.add("quiet")
    gateway = await start(jobs_max_running=1)  # type: ignore[misc]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        many = [
            (await jobs.SubmitImageJob(generation_job(f"busy {i}"), metadata=bearer(busy))).name
            for i in range(6)
        ]
        one = (await jobs.SubmitImageJob(generation_job("quiet"), metadata=bearer(quiet))).name
        quiet_done = await operations.WaitOperation(_wait(one), metadata=bearer(quiet))
        started = metadata_of(quiet_done).start_time.ToMilliseconds()
        later = 0
        for name in many:
            op = await operations.GetOperation(
                operations_pb2.GetOperationRequest(name=name), metadata=bearer(busy)
            )
            meta = metadata_of(op)
            if not meta.HasField("start_time") or meta.start_time.ToMilliseconds() > started:
                later += 1
        # One runner: busy's first job, then quiet's turn (not busy's five others).
        assert later >= 4, later


async def test_cancel_a_queued_and_a_running_job(
    start: Callable[..., object], clients: ClientsFile, emulator: Emulator
) -> None:
    token = clients.add("team-a", max_concurrent=1)
    emulator.set_faults("latency;ms=20000")
    gateway = await start()  # type: ignore[misc]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        running = await jobs.SubmitImageJob(generation_job("long"), metadata=bearer(token))
        queued = await jobs.SubmitImageJob(generation_job("waits"), metadata=bearer(token))
        await _until(lambda: _has_request(emulator))
        await operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=queued.name), metadata=bearer(token)
        )
        op = await operations.GetOperation(
            operations_pb2.GetOperationRequest(name=queued.name), metadata=bearer(token)
        )
        assert op.done and op.error.code == grpc.StatusCode.CANCELLED.value[0]
        asked = time.monotonic()
        await operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=running.name), metadata=bearer(token)
        )
        entry = emulator.journal.entries[0]
        await _until(lambda: _disconnected(entry))
        reached_upstream_s = time.monotonic() - asked
        done = await operations.WaitOperation(_wait(running.name), metadata=bearer(token))
        assert done.done and done.error.code == grpc.StatusCode.CANCELLED.value[0]
        assert metadata_of(done).state == jobs_pb2.JOB_STATE_CANCELLED
        assert len(emulator.journal.entries) == 1  # the queued one never went upstream
    # Loopback, one process: the cancel reaches OpenAI's connection at once.
    assert reached_upstream_s < 5.0


async def _has_request(emulator: Emulator) -> bool:
    return bool(emulator.journal.entries)


async def _disconnected(entry: object) -> bool:
    return bool(entry.has_event("client_disconnected"))  # type: ignore[attr-defined]


async def test_another_clients_operation_is_not_found_like_an_unknown_one(
    start: Callable[..., object], clients: ClientsFile
) -> None:
    owner = clients.add("owner")
    other = clients.add("other")
    gateway = await start()  # type: ignore[misc]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        op = await jobs.SubmitImageJob(generation_job(), metadata=bearer(owner))
        unknown = "operations/0b0f3c8e-5a4d-4c7e-9a57-2f2d3c4b5a69"
        answers = []
        for name in (op.name, unknown):
            for call in (
                lambda n: operations.GetOperation(
                    operations_pb2.GetOperationRequest(name=n), metadata=bearer(other)
                ),
                lambda n: operations.CancelOperation(
                    operations_pb2.CancelOperationRequest(name=n), metadata=bearer(other)
                ),
                lambda n: operations.DeleteOperation(
                    operations_pb2.DeleteOperationRequest(name=n), metadata=bearer(other)
                ),
                lambda n: operations.WaitOperation(_wait(n, 1), metadata=bearer(other)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call(name)
                answers.append((refused.value.code(), refused.value.details().replace(name, "N")))
        assert {code for code, _ in answers} == {grpc.StatusCode.NOT_FOUND}
        assert answers[:4] == answers[4:]
        listed = await operations.ListOperations(
            operations_pb2.ListOperationsRequest(name="operations"), metadata=bearer(other)
        )
        assert not listed.operations
        done = await operations.WaitOperation(_wait(op.name), metadata=bearer(owner))
        assert done.done


async def test_edit_and_variation_jobs_run_their_uploads(
    start: Callable[..., object], clients: ClientsFile, emulator: Emulator
) -> None:
    token = clients.add("team-a")
    gateway = await start()  # type: ignore[misc]
    image, mask = png(64, 64), mask_png(64, 64)
    edit = [
        jobs_pb2.SubmitImageEditJobRequest(
            parameters=params_pb2.EditParameters(
                prompt="add a moon",
                model="gpt-image-2",
                images=[params_pb2.FileInfo()],
                mask=params_pb2.FileInfo(),
            )
        ),
        jobs_pb2.SubmitImageEditJobRequest(
            chunk=params_pb2.FileChunk(role=params_pb2.FILE_ROLE_IMAGE, data=image)
        ),
        jobs_pb2.SubmitImageEditJobRequest(
            chunk=params_pb2.FileChunk(role=params_pb2.FILE_ROLE_MASK, data=mask)
        ),
    ]
    variation = [
        jobs_pb2.SubmitImageVariationJobRequest(
            parameters=params_pb2.VariationParameters(model="dall-e-2", image=params_pb2.FileInfo())
        ),
        jobs_pb2.SubmitImageVariationJobRequest(
            chunk=params_pb2.FileChunk(role=params_pb2.FILE_ROLE_IMAGE, data=png(64, 64))
        ),
    ]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        edit_op = await jobs.SubmitImageEditJob(iter(edit), metadata=bearer(token))
        vary_op = await jobs.SubmitImageVariationJob(iter(variation), metadata=bearer(token))
        # DALL-E 2 answers with OpenAI's own link (its default response_format), kept as is.
        for op, content in ((edit_op, "stored"), (vary_op, "url")):
            done = await operations.WaitOperation(_wait(op.name), metadata=bearer(token))
            assert done.done and not done.HasField("error"), done.error
            assert result_of(done).images[0].WhichOneof("content") == content
        deleted = await operations.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name=edit_op.name), metadata=bearer(token)
        )
        assert deleted is not None
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await operations.GetOperation(
                operations_pb2.GetOperationRequest(name=edit_op.name), metadata=bearer(token)
            )
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    (sent,) = [e for e in emulator.journal.entries if e.path.endswith("/edits")]
    assert sorted(f.field for f in sent.files) == ["image", "mask"]
    assert next(f for f in sent.files if f.field == "image").size == len(image)


async def test_list_pages_and_filters(start: Callable[..., object], clients: ClientsFile) -> None:
    token = clients.add("team-a", max_queued_jobs=20)
    gateway = await start()  # type: ignore[misc]
    async with await _channel(gateway) as channel:
        jobs, operations = stubs(channel)
        names = {
            (await jobs.SubmitImageJob(generation_job(f"p {i}"), metadata=bearer(token))).name
            for i in range(5)
        }
        seen: list[str] = []
        token_ = ""
        while True:
            page = await operations.ListOperations(
                operations_pb2.ListOperationsRequest(page_size=2, page_token=token_),
                metadata=bearer(token),
            )
            seen += [op.name for op in page.operations]
            token_ = page.next_page_token
            if not token_:
                break
        assert sorted(seen) == sorted(names)
        for bad in ("state = nonsense", "prompt = x"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await operations.ListOperations(
                    operations_pb2.ListOperationsRequest(filter=bad), metadata=bearer(token)
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _detail(
    error: grpc.aio.AioRpcError, message: error_details_pb2.QuotaFailure
) -> error_details_pb2.QuotaFailure:
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Unpack(message):
                    return message
    raise AssertionError("no such detail")
