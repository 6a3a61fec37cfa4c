"""Callers that leave while the store is making their job or claiming their request id,
with a real redis-server paused by SIGSTOP while that round trip is on its way (in
front of a real gateway and emulator):

- a submit: the job it made is kept whole (it runs at once, its reservation is its
  own), so the request id's retry finds it done and booked;
- a synchronous call: it was not kept yet, so a claim that landed anyway is
  forgotten and the retry runs the call at once, instead of waiting for a call that
  nobody runs until its lease lapses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile, bearer
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import (
    images_service_pb2_grpc,
    jobs_pb2,
    params_pb2,
    quota_pb2,
    quota_pb2_grpc,
)
from jobs_support import OPENAI_KEY, generation_job, metadata_of, new_request_id, stubs
from limits.redis_support import RedisServer
from support.gateways import started_gateways

from imagegate_server.emulator import Emulator, EmulatorConfig


def _wait(name: str) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=10))


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


@contextlib.asynccontextmanager
async def _gateway_on_redis(
    emulator: Emulator, clients: ClientsFile, directory: Path
) -> AsyncIterator[tuple[RedisServer, grpc.aio.Channel]]:
    """A gateway on its own redis-server (a 60 s lease: a job left to its lease would
    not run within the tests' waits), and a channel to it."""
    with RedisServer(directory) as redis:
        async with started_gateways(
            OPENAI_KEY, emulator.base_url, clients_file=clients.path,
            redis_url=redis.url, redis_timeout_s=10.0, jobs_lease_s=60.0,
        ) as start:  # fmt: skip
            gateway = await start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
                yield redis, channel


async def _caller_leaves_while_redis_waits(
    redis: RedisServer, call: Callable[[], Awaitable[object]]
) -> None:
    """``call`` (a 0.5 s deadline) with Redis stopped: the caller leaves while the
    gateway's round trip waits in Redis, which runs it once it goes on."""
    assert redis.process is not None
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as left:
            await call()
        assert left.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.5)  # the caller is gone; the round trip still waits
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)


@pytest.mark.parametrize("budget", [False, True], ids=["no-budget", "budget"])
async def test_a_job_made_while_its_caller_left_runs_and_keeps_its_reservation(
    emulator: Emulator, tmp_path: Path, budget: bool
) -> None:
    """Inline, without a budget, the submit's first round trip is the job's create: the
    caller leaves while it is on its way. With a budget it is the reservation: the
    caller leaves before the job is made, and what was reserved must not stay held."""
    clients = ClientsFile(tmp_path / "clients.toml")
    token = clients.add("team-a", **({"daily_budget_usd": 100} if budget else {}))
    request = generation_job("a kept job", request_id=new_request_id(), inline=True)
    async with _gateway_on_redis(emulator, clients, tmp_path / "redis") as (redis, channel):
        jobs, operations = stubs(channel)
        # One job first, so that Redis has the scripts (a script's first run loads it:
        # interrupted, nothing would be made at all).
        warm = await jobs.SubmitImageJob(
            generation_job("warm", inline=True), metadata=bearer(token)
        )
        warmed = await operations.WaitOperation(_wait(warm.name), metadata=bearer(token))
        await _caller_leaves_while_redis_waits(
            redis, lambda: jobs.SubmitImageJob(request, metadata=bearer(token), timeout=0.5)
        )
        again = await jobs.SubmitImageJob(request, metadata=bearer(token), timeout=10)
        done = await operations.WaitOperation(_wait(again.name), metadata=bearer(token), timeout=15)
        quota = quota_pb2_grpc.QuotaServiceStub(channel)
        shown = await quota.GetQuota(quota_pb2.GetQuotaRequest(), metadata=bearer(token))

    # Run at once by the runner it was made for (not after its lease of 60 s lapsed).
    assert done.done, "the job made for a caller that left did not run"
    meta = metadata_of(done)
    assert meta.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert sum(e.path.endswith("/generations") for e in emulator.journal.entries) == 2
    assert meta.cost_usd_micros > 0
    warm_cost = metadata_of(warmed).cost_usd_micros
    assert shown.spent_today_usd_micros == warm_cost + meta.cost_usd_micros
    assert shown.reserved_usd_micros == 0  # nothing left held by the submit that was left


async def test_a_call_whose_caller_left_before_it_was_kept_runs_on_its_retry(
    emulator: Emulator, tmp_path: Path
) -> None:
    clients = ClientsFile(tmp_path / "clients.toml")
    token = clients.add("team-a")
    parameters = params_pb2.GenerationParameters(
        prompt="a kept call", model="gpt-image-2", quality=params_pb2.QUALITY_LOW,
        size="1024x1024",
    )  # fmt: skip
    request = pb.CreateImageRequest(parameters=parameters, request_id=new_request_id())
    async with _gateway_on_redis(emulator, clients, tmp_path / "redis") as (redis, channel):
        images = images_service_pb2_grpc.ImagesServiceStub(channel)
        # A first call with a request id loads the scripts into Redis.
        warm = pb.CreateImageRequest(parameters=parameters, request_id=new_request_id())
        await images.CreateImage(warm, metadata=bearer(token), timeout=10)
        await _caller_leaves_while_redis_waits(
            redis, lambda: images.CreateImage(request, metadata=bearer(token), timeout=0.5)
        )
        await asyncio.sleep(0.5)  # the claim landed, and was forgotten
        reply = await images.CreateImage(request, metadata=bearer(token), timeout=10)

    assert reply.result.images[0].data.startswith(b"\x89PNG")
    assert sum(e.path.endswith("/generations") for e in emulator.journal.entries) == 2
