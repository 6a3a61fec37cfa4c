"""One ``imagegate serve`` (the local database, no Redis) killed with queued and running
jobs, then started again: the queued ones run, the running one fails ABORTED at its
estimate, none stays running. And a finished job is forgotten after its retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile, bearer
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from imagegate.v1 import jobs_pb2
from jobs_support import OPENAI_KEY, generation_job, metadata_of, new_request_id, stubs
from support.serve import Serve, clean_env

from imagegate_server.emulator import Emulator, EmulatorConfig

GENERATIONS = "/v1/images/generations"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


def _serve(tmp_path: Path, emulator: Emulator, clients: ClientsFile, **settings: str) -> Serve:
    env = clean_env(
        IMAGEGATE_OPENAI_API_KEY=OPENAI_KEY,
        IMAGEGATE_OPENAI_BASE_URL=emulator.base_url,
        IMAGEGATE_CLIENTS_FILE=str(clients.path),
        IMAGEGATE_DATA_DIR=str(tmp_path / "data"),
        IMAGEGATE_SHUTDOWN_GRACE_S="0",
        **{f"IMAGEGATE_{k.upper()}": v for k, v in settings.items()},
    )
    (tmp_path / "port").unlink(missing_ok=True)
    return Serve(["--port", "0"], env, tmp_path)


def _wait(name: str, seconds: int = 60) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(
        name=name, timeout=duration_pb2.Duration(seconds=seconds)
    )


async def test_a_restart_loses_no_job(tmp_path: Path, emulator: Emulator) -> None:
    clients = ClientsFile(tmp_path / "clients.toml")
    token = clients.add("team-a", max_concurrent=1)
    auth = bearer(token)
    emulator.set_faults("latency;ms=60000;first=1")  # the first job hangs until killed
    first = _serve(tmp_path, emulator, clients, jobs_lease_s="2")
    try:
        port = await first.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            jobs, _ = stubs(channel)
            ops = [
                await jobs.SubmitImageJob(generation_job(f"job {i}"), metadata=auth)
                for i in range(3)
            ]
            for _ in range(200):
                if emulator.journal.entries:
                    break
                await asyncio.sleep(0.05)
            assert len(emulator.journal.entries) == 1  # one running, two queued
    finally:
        await asyncio.to_thread(first.kill)
    second = _serve(tmp_path, emulator, clients, jobs_lease_s="2")
    try:
        port = await second.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            _, operations = stubs(channel)
            done = [
                await operations.WaitOperation(_wait(op.name), metadata=auth, timeout=70)
                for op in ops
            ]
    finally:
        await asyncio.to_thread(second.kill)
    running, *queued = done
    assert running.done and running.error.code == grpc.StatusCode.ABORTED.value[0]
    meta = metadata_of(running)
    assert meta.cost_usd_micros == meta.estimate_usd_micros > 0
    for op in queued:
        assert metadata_of(op).state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert sum(e.path.endswith(GENERATIONS) for e in emulator.journal.entries) == 3


async def test_a_finished_job_is_forgotten_after_its_retention(
    tmp_path: Path, emulator: Emulator
) -> None:
    clients = ClientsFile(tmp_path / "clients.toml")
    auth = bearer(clients.add("team-a"))
    serve = _serve(tmp_path, emulator, clients, jobs_retention_s="1")
    try:
        port = await serve.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            jobs, operations = stubs(channel)
            request_id = new_request_id()
            op = await jobs.SubmitImageJob(generation_job(request_id=request_id), metadata=auth)
            done = await operations.WaitOperation(_wait(op.name), metadata=auth)
            assert done.done
            await asyncio.sleep(1.5)
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await operations.GetOperation(
                    operations_pb2.GetOperationRequest(name=op.name), metadata=auth
                )
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
            again = await jobs.SubmitImageJob(generation_job(request_id=request_id), metadata=auth)
            assert again.name != op.name  # the request id is free again: a new job
    finally:
        await asyncio.to_thread(serve.kill)
