"""9. jobs: what a job costs next to a synchronous call, what a queued job holds, and how
soon a waiting caller wakes once the upstream answered.

One gateway on Redis (a local redis-server) in front of one emulator (answering at
once), its jobs and idempotency in Redis, its result store a local directory:

``unary``    CreateImage of the overhead scenario's call (a 256x256 dall-e-2 PNG)
``job``      the same call as SubmitImageJob (inline images) then WaitOperation,
             which returns the result: a job's whole life, its image stored
``rpc``      GetOperation of a finished job: the least a job's second RPC costs
             (one RPC of the gateway's with one read), for the reader to see how
             much of ``job`` - ``unary`` is the second RPC rather than the jobs
Phases alternate, at concurrency 1 and 16; the gateway's CPU per image (from
/proc/PID/stat, every thread) is compared (target: job <= 1.3x unary); Redis's own
CPU per image is reported beside it.

``queued``   N jobs submitted by a client whose rate (1 request per minute) lets one
             start and keeps the others queued: the gateway's RSS and Redis's
             ``used_memory`` before and after, per queued job.
``wake``     jobs whose upstream takes 200 ms, each waited for with WaitOperation
             from its submit on: the time from the emulator's last response byte
             (its journal) to the waiting caller's answer, p50 and p99.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import httpx
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from imagegate.v1 import jobs_pb2, jobs_pb2_grpc, params_pb2

from imagegate_server.bench.clients import GrpcPool
from imagegate_server.bench.loadgen import PYTHON_GRPC
from imagegate_server.bench.measure import Call, LoadResult, closed_loop
from imagegate_server.bench.model import Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import StackConfig, running_emulator, running_gateways
from imagegate_server.bench.redis_server import redis_server_binary, running_redis
from imagegate_server.bench.scenarios.overhead import PARAMETERS, REQUEST
from imagegate_server.bench.usage import cpu_seconds, rss_bytes
from imagegate_server.redis_connection import RedisConnection, RedisOptions

NAME = "jobs"
CPU_TARGET = 1.3
WAIT = duration_pb2.Duration(seconds=60)


def preflight() -> None:
    redis_server_binary()


def unary_call(pool: GrpcPool, metadata: tuple[tuple[str, str], ...] = ()) -> Call:
    async def call() -> None:
        reply = await pool.stub().CreateImage(REQUEST, metadata=metadata, timeout=30)
        if not reply.result.images[0].data:
            raise ValueError("no image in the reply")

    return call


def job_call(
    channel: grpc.aio.Channel,
    metadata: tuple[tuple[str, str], ...] = (),
    finished: Callable[[str], None] = lambda name: None,
) -> Call:
    submit = jobs_pb2_grpc.ImageJobsServiceStub(channel)
    operations = operations_pb2_grpc.OperationsStub(channel)
    # Inline, as the unary call it is measured against (a job's default is stored).
    inline = params_pb2.GenerationParameters(delivery=params_pb2.DELIVERY_INLINE)
    inline.MergeFrom(PARAMETERS)
    request = jobs_pb2.SubmitImageJobRequest(parameters=inline)

    async def call() -> None:
        submitted = await submit.SubmitImageJob(request, metadata=metadata, timeout=30)
        done = await operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=submitted.name, timeout=WAIT),
            metadata=metadata,
            timeout=70,
        )
        if not done.done or done.HasField("error"):
            raise ValueError(f"job not succeeded: {done.error.message}")
        finished(done.name)

    return call


async def get_call(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> Call:
    """GetOperation of one finished job (submitted and waited for here)."""
    finished: list[str] = []
    job = job_call(channel, metadata, finished.append)
    await job()
    request = operations_pb2.GetOperationRequest(name=finished[0])
    operations = operations_pb2_grpc.OperationsStub(channel)

    async def call() -> None:
        reply = await operations.GetOperation(request, metadata=metadata, timeout=30)
        if not reply.done:
            raise ValueError("the finished job is not done")

    return call


async def _redis_memory(url: str) -> int:
    connection = RedisConnection.from_url(url, RedisOptions(timeout_s=5.0))
    try:
        info = await connection.call(lambda client: client.info("memory"))
        return int(info["used_memory"])
    finally:
        await connection.aclose()


async def _add_client(clients_file: Path, name: str, *options: str) -> str:
    argv = ["-m", "imagegate_server.cli", "clients", "add", name, "--file", str(clients_file)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, *options, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"imagegate clients add failed: {err.decode(errors='replace')}")
    return out.decode().strip()


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    workdir = ctx.workdir / NAME
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    levels = [(1, 10 if ctx.tiny else 400), (16, 32 if ctx.tiny else 1600)]
    rounds = 1 if ctx.tiny else 2
    queued_jobs = 200 if ctx.tiny else 10_000
    wakes = 5 if ctx.tiny else 100
    time_limit = 20.0 if ctx.tiny else 120.0
    clients_file = workdir / "clients.toml"
    async with running_redis(workdir / "redis") as redis:
        # One after the other: each rewrites the whole file.
        fast = await _add_client(clients_file, "fast", "--max-queued-jobs", "unlimited")
        queue = await _add_client(
            clients_file, "queue", "--requests-per-minute", "1", "--max-queued-jobs", "unlimited"
        )
        env = {
            "IMAGEGATE_REDIS_URL": redis.url,
            "IMAGEGATE_CLIENTS_FILE": str(clients_file),
        }
        async with AsyncExitStack() as stack:
            url, _ = await stack.enter_async_context(running_emulator(StackConfig(), workdir))
            gateways = await stack.enter_async_context(
                running_gateways(url, {"gateway": env}, workdir)
            )
            target, pid = gateways["gateway"]
            await _compare(ctx, result, target, pid, redis.pid, fast, levels, rounds, time_limit)
            await _queued(result, target, pid, redis.url, queue, queued_jobs)
        async with AsyncExitStack() as stack:
            slow = StackConfig(latency_ms=200)
            url, _ = await stack.enter_async_context(running_emulator(slow, workdir / "slow"))
            gateways = await stack.enter_async_context(
                running_gateways(url, {"waiting": env}, workdir)
            )
            await _wake(result, gateways["waiting"], url, fast, wakes)
    result.notes.append(
        "one gateway on Redis (its own redis-server) in front of one emulator; job = "
        "SubmitImageJob with inline images, then WaitOperation; unary = CreateImage of "
        "the same call; rpc = GetOperation of a finished job (the least a second RPC "
        "costs); CPU from /proc/PID/stat of the gateway process, all threads; "
        "Redis's CPU apart; driven by the Python gRPC client"
    )
    return result


async def _compare(
    ctx: Context,
    result: ScenarioResult,
    target: str,
    pid: int,
    redis_pid: int,
    token: str,
    levels: list[tuple[int, int]],
    rounds: int,
    time_limit: float,
) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    pool = GrpcPool(target)
    await pool.ready()
    paths: dict[str, Call] = {
        "unary": unary_call(pool, metadata),
        "job": job_call(pool.channel(), metadata),
        "rpc": await get_call(pool.channel(), metadata),
    }
    measured: dict[tuple[str, int], list[float]] = {}
    loads: dict[tuple[str, int], LoadResult] = {}
    try:
        for call in paths.values():
            await closed_loop(call, 4, 8 if ctx.tiny else 64, time_limit)
        for concurrency, calls in levels:
            for _ in range(rounds):
                for name, call in paths.items():
                    before, redis_before = cpu_seconds(pid), cpu_seconds(redis_pid)
                    load = await closed_loop(call, concurrency, calls, time_limit)
                    used = [cpu_seconds(pid) - before, cpu_seconds(redis_pid) - redis_before]
                    sums = measured.setdefault((name, concurrency), [0.0, 0.0, 0.0])
                    sums[0] += used[0]
                    sums[1] += used[1]
                    sums[2] += load.ok
                    total = loads.setdefault((name, concurrency), LoadResult())
                    total.latencies_s += load.latencies_s
                    total.errors.update(load.errors)
                    total.elapsed_s += load.elapsed_s
    finally:
        await pool.close()
    for (name, concurrency), (cpu, redis_cpu, ok) in measured.items():
        row = Row.of(NAME, "256x256", name, concurrency, loads[name, concurrency])
        row.gateway_cpu_ms_per_call = 1000 * cpu / ok if ok else math.inf
        row.extra["redis_cpu_ms_per_image"] = 1000 * redis_cpu / ok if ok else math.inf
        row.generator = PYTHON_GRPC
        result.rows.append(row)
    for concurrency, _ in levels:
        job, unary = measured["job", concurrency], measured["unary", concurrency]
        ratio = (job[0] / max(job[2], 1)) / max(unary[0] / max(unary[2], 1), 1e-9)
        result.checks.append(
            Check(
                NAME, f"gateway CPU per image, job / unary, at concurrency {concurrency}",
                ratio, CPU_TARGET, higher_is_better=False, unit="x",
            )
        )  # fmt: skip


async def _queued(
    result: ScenarioResult, target: str, pid: int, redis_url: str, token: str, count: int
) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    rss_before, redis_before = rss_bytes(pid), await _redis_memory(redis_url)
    cpu_before = cpu_seconds(pid)
    async with grpc.aio.insecure_channel(target) as channel:
        submit = jobs_pb2_grpc.ImageJobsServiceStub(channel)
        request = jobs_pb2.SubmitImageJobRequest(parameters=PARAMETERS)
        load = LoadResult()
        started = time.perf_counter()
        for offset in range(0, count, 100):
            batch = min(100, count - offset)
            answers = await asyncio.gather(
                *(
                    submit.SubmitImageJob(request, metadata=metadata, timeout=30)
                    for _ in range(batch)
                ),
                return_exceptions=True,
            )
            for answer in answers:
                if isinstance(answer, BaseException):
                    load.errors[type(answer).__name__] += 1
                else:
                    load.latencies_s.append(0.0)
        load.elapsed_s = time.perf_counter() - started
    await asyncio.sleep(1.0)
    rss_after, redis_after = rss_bytes(pid), await _redis_memory(redis_url)
    row = Row.of(NAME, f"{count} queued", "queued", 100, load, cpu_s=cpu_seconds(pid) - cpu_before)
    row.generator = PYTHON_GRPC
    row.extra["gateway_rss_bytes_per_queued_job"] = (rss_after - rss_before) / count
    row.extra["redis_bytes_per_queued_job"] = (redis_after - redis_before) / count
    row.extra["submits_per_s"] = load.ok / max(load.elapsed_s, 1e-9)
    result.rows.append(row)


async def _wake(
    result: ScenarioResult, gateway: tuple[str, int], emulator_url: str, token: str, n: int
) -> None:
    target, pid = gateway
    metadata = (("authorization", f"Bearer {token}"),)
    cpu_before = cpu_seconds(pid)
    woke: dict[str, float] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        submit = jobs_pb2_grpc.ImageJobsServiceStub(channel)
        operations = operations_pb2_grpc.OperationsStub(channel)
        for _ in range(n):
            prompt = f"wake {uuid.uuid4().hex}"
            parameters = type(PARAMETERS)()
            parameters.CopyFrom(PARAMETERS)
            parameters.prompt = prompt
            op = await submit.SubmitImageJob(
                jobs_pb2.SubmitImageJobRequest(parameters=parameters), metadata=metadata
            )
            done = await operations.WaitOperation(
                operations_pb2.WaitOperationRequest(name=op.name, timeout=WAIT),
                metadata=metadata, timeout=70,
            )  # fmt: skip
            if done.done:
                woke[prompt] = time.time()
    origin = emulator_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=30) as client:
        journal = (await client.get(f"{origin}/_emulator/requests")).json()
    delays = []
    for entry in journal:
        prompt = (entry.get("json") or {}).get("prompt", "")
        finished = [e["at"] for e in entry.get("events", ()) if e.get("kind") == "finished"]
        if prompt in woke and finished:
            delays.append(woke[prompt] - finished[0])
    delays.sort()
    load = LoadResult()
    load.latencies_s = delays
    row = Row.of(NAME, "upstream answer -> waiter", "wake", 1, load)
    row.gateway_cpu_ms_per_call = 1000 * (cpu_seconds(pid) - cpu_before) / max(n, 1)
    row.generator = PYTHON_GRPC
    result.rows.append(row)
