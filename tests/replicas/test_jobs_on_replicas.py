"""Jobs across three ``imagegate serve`` processes on one real Redis and one real
S3-compatible store (SeaweedFS), in front of one emulator: duplicate submits racing
on different replicas, Wait and Cancel across replicas, a replica killed while it
holds jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from imagegate.v1 import jobs_pb2, jobs_pb2_grpc, params_pb2
from limits.redis_support import RedisServer
from replica_support import Replica, bearer, replicas, wait_for
from store.weed_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer

from imagegate_server.emulator import Emulator

GENERATIONS = "/v1/images/generations"


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    with WeedServer(tmp_path_factory.mktemp("jobs-weed")) as server:
        yield server


def _store(weed: WeedServer, prefix: str) -> dict[str, str]:
    return {
        "store_backend": "s3",
        "store_s3_bucket": weed.bucket,
        "store_s3_prefix": prefix,
        "store_s3_endpoint": weed.endpoint,
        "store_s3_region": REGION,
        "store_s3_access_key_id": ACCESS_KEY,
        "store_s3_secret_access_key": SECRET_KEY,
    }


def _job(prompt: str, request_id: str = "") -> jobs_pb2.SubmitImageJobRequest:
    parameters = params_pb2.GenerationParameters(
        prompt=prompt, model="gpt-image-2", quality=params_pb2.QUALITY_LOW, size="1024x1024"
    )
    return jobs_pb2.SubmitImageJobRequest(parameters=parameters, request_id=request_id)


def _edit(prompt: str, image: bytes) -> list[jobs_pb2.SubmitImageEditJobRequest]:
    parameters = params_pb2.EditParameters(
        prompt=prompt, model="gpt-image-2", quality=params_pb2.QUALITY_LOW,
        images=[params_pb2.FileInfo()],
    )  # fmt: skip
    chunk = params_pb2.FileChunk(role=params_pb2.FILE_ROLE_IMAGE, data=image)
    return [
        jobs_pb2.SubmitImageEditJobRequest(parameters=parameters),
        jobs_pb2.SubmitImageEditJobRequest(chunk=chunk),
    ]


def _jobs(replica: Replica) -> jobs_pb2_grpc.ImageJobsServiceStub:
    return jobs_pb2_grpc.ImageJobsServiceStub(replica.channel())


def _ops(replica: Replica) -> operations_pb2_grpc.OperationsStub:
    return operations_pb2_grpc.OperationsStub(replica.channel())


def _meta(op: operations_pb2.Operation) -> jobs_pb2.ImageJobMetadata:
    meta = jobs_pb2.ImageJobMetadata()
    op.metadata.Unpack(meta)
    return meta


def _runner_of(fleet: list[Replica], job_id: str) -> Replica | None:
    for replica in fleet:
        for record in replica.records():
            if record.get("msg") == "job started" and record.get("job") == job_id:
                return replica
    return None


async def test_jobs_across_replicas(
    tmp_path: Path,
    emulator: Emulator,
    clients: ClientsFile,
    redis_server: RedisServer,
    weed: WeedServer,
) -> None:
    token = clients.add("team-a", max_queued_jobs=50)
    auth = bearer(token)
    emulator.set_faults("latency;ms=1500")
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=redis_server.url, **_store(weed, "jobs-a/"),
    ) as fleet:  # fmt: skip
        # Duplicate submits racing on three replicas: one job, one upstream request.
        request_id = "5b4f1f0e-9d1c-4f57-8d2e-0c1a2b3c4d5e"
        submitted = await asyncio.gather(
            *(_jobs(r).SubmitImageJob(_job("racing", request_id), metadata=auth) for r in fleet)
        )
        assert len({op.name for op in submitted}) == 1
        name = submitted[0].name
        # Wait on another replica than the one that runs it (whichever that is).
        waits = await asyncio.gather(
            *(
                _ops(r).WaitOperation(
                    operations_pb2.WaitOperationRequest(
                        name=name, timeout=duration_pb2.Duration(seconds=30)
                    ),
                    metadata=auth, timeout=40,
                )
                for r in fleet
            )
        )  # fmt: skip
        assert all(op.done and _meta(op).state == jobs_pb2.JOB_STATE_SUCCEEDED for op in waits)
        assert sum(e.path.endswith(GENERATIONS) for e in emulator.journal.entries) == 1
        # Cancel on a replica that does not run the job: its upstream request is aborted.
        emulator.set_faults("latency;ms=30000")
        emulator.journal.clear()
        long = await _jobs(fleet[0]).SubmitImageJob(_job("long"), metadata=auth)
        job_id = long.name.removeprefix("operations/")

        async def started() -> bool:
            return _runner_of(fleet, job_id) is not None and bool(emulator.journal.entries)

        await wait_for(started, 30, "the job to start")
        runner = _runner_of(fleet, job_id)
        other = next(r for r in fleet if r is not runner)
        asked = time.time()
        await _ops(other).CancelOperation(
            operations_pb2.CancelOperationRequest(name=long.name), metadata=auth
        )
        entry = emulator.journal.entries[0]

        async def disconnected() -> bool:
            return entry.has_event("client_disconnected")

        await wait_for(disconnected, 10, "the upstream request to be aborted")
        event = next(e for e in entry.events if e.kind == "client_disconnected")
        done = await _ops(other).WaitOperation(
            operations_pb2.WaitOperationRequest(name=long.name), metadata=auth, timeout=30
        )
    assert done.done and done.error.code == grpc.StatusCode.CANCELLED.value[0]
    print(f"cancel across replicas reached the upstream in {1000 * (event.at - asked):.0f} ms")


async def test_a_replica_killed_holding_jobs(
    tmp_path: Path,
    emulator: Emulator,
    clients: ClientsFile,
    redis_server: RedisServer,
    weed: WeedServer,
) -> None:
    from support.images import png

    token = clients.add("team-a", max_concurrent=1, max_queued_jobs=50)
    auth = bearer(token)
    # The first upstream request takes long (the replica running it is killed); the
    # others are quick.
    emulator.set_faults("latency;ms=60000;first=1")
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=redis_server.url, jobs_lease_s="2", **_store(weed, "jobs-b/"),
    ) as fleet:  # fmt: skip
        first = await _jobs(fleet[0]).SubmitImageJob(_job("killed mid-run"), metadata=auth)
        job_id = first.name.removeprefix("operations/")

        async def started() -> bool:
            return _runner_of(fleet, job_id) is not None

        await wait_for(started, 30, "the first job to start")
        victim = _runner_of(fleet, job_id)
        assert victim is not None
        # Queued behind it (max_concurrent = 1), submitted through the victim: their
        # uploads are in the shared store, their records in Redis.
        queued = [
            await _jobs(victim).SubmitImageEditJob(
                iter(_edit(f"queued {i}", png(64, 64))), metadata=auth
            )
            for i in range(3)
        ]
        await asyncio.to_thread(victim.kill)
        alive = [r for r in fleet if r is not victim]
        outcomes = []
        for op in [first, *queued]:
            outcomes.append(
                await _ops(alive[0]).WaitOperation(
                    operations_pb2.WaitOperationRequest(
                        name=op.name, timeout=duration_pb2.Duration(seconds=60)
                    ),
                    metadata=auth, timeout=70,
                )
            )  # fmt: skip
    killed, *rest = outcomes
    assert killed.done and killed.error.code == grpc.StatusCode.ABORTED.value[0]
    meta = _meta(killed)
    assert meta.state == jobs_pb2.JOB_STATE_FAILED
    assert meta.cost_usd_micros == meta.estimate_usd_micros > 0
    for op in rest:
        assert op.done and _meta(op).state == jobs_pb2.JOB_STATE_SUCCEEDED, op.error
    edits = [e for e in emulator.journal.entries if e.path.endswith("/edits")]
    assert len(edits) == 3
