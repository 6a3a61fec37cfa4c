"""A client's own spend per upstream in GetQuota and ``imagegate quota``: calls routed
to two upstreams of a file, on each limits store a gateway can use (this process's
memory, the local database, a real redis-server, a real Redis Cluster)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from imagegate.v1 import jobs_pb2, jobs_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc
from routing_support import Upstreams, gateway, generation, metadata, stub_for
from support.redis_deployments import Cluster, RedisNode
from support.serve import MODULE_COMMAND, clean_env

from imagegate_server.pricing.money import format_usd


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    with RedisNode(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(params=["memory", "local", "redis", "redis-cluster"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """The gateway settings that pick the limits store."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_server").url}
    if request.param == "redis-cluster":
        return {"redis_url": request.getfixturevalue("redis_cluster").url()}
    return {"limits_store": request.param, "data_dir": tmp_path / "data"}


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODULE_COMMAND, *argv], env=clean_env(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


async def test_get_quota_shows_the_clients_spend_on_each_upstream_that_served_it(
    upstreams: Upstreams, tmp_path: Path, store: dict[str, object]
) -> None:
    # openai-a first, until its ceiling of 2 images a minute sends calls to openai-b.
    upstreams.write(
        upstreams.entry("openai-a", images_per_minute=2),
        upstreams.entry("openai-b", priority=1),
    )
    clients = ClientsFile(tmp_path / "clients.toml")
    team = clients.add("team-a")
    other = clients.add("team-b")
    async with (
        gateway(upstreams.file, clients_file=clients.path, **store) as running,
        stub_for(running) as stub,
    ):
        for index in range(3):
            await stub.CreateImage(generation(f"fox {index}"), metadata=metadata(team))
        target = f"127.0.0.1:{running.port}"
        async with grpc.aio.insecure_channel(target) as channel:
            quotas = quota_pb2_grpc.QuotaServiceStub(channel)
            quota = await quotas.GetQuota(
                quota_pb2.GetQuotaRequest(), metadata=metadata(team), timeout=30
            )
            untouched = await quotas.GetQuota(
                quota_pb2.GetQuotaRequest(), metadata=metadata(other), timeout=30
            )
        printed = await asyncio.to_thread(_cli, "quota", "--target", target, "--token", team)
    assert (upstreams.generations("openai-a"), upstreams.generations("openai-b")) == (2, 1)
    spends = {s.upstream: s for s in quota.upstream_spend}
    assert list(spends) == ["openai-a", "openai-b"]
    a, b = spends["openai-a"], spends["openai-b"]
    assert a.spent_today_usd_micros == 2 * b.spent_today_usd_micros > 0  # same call, twice
    assert a.spent_this_month_usd_micros == a.spent_today_usd_micros
    assert b.spent_this_month_usd_micros == b.spent_today_usd_micros
    assert a.spent_today_usd_micros + b.spent_today_usd_micros == quota.spent_today_usd_micros
    assert list(untouched.upstream_spend) == []  # a client sees only its own spend
    assert printed.returncode == 0, printed.stderr
    lines = [" ".join(line.split()) for line in printed.stdout.splitlines()]
    a_usd, b_usd = (format_usd(s.spent_today_usd_micros) for s in (a, b))
    assert f"on openai-a {a_usd} today, {a_usd} this month" in lines, printed.stdout
    assert f"on openai-b {b_usd} today, {b_usd} this month" in lines


async def test_a_jobs_cost_is_booked_to_the_upstream_that_ran_it(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.write(upstreams.entry("openai-a"), upstreams.entry("openai-b", priority=1))
    clients = ClientsFile(tmp_path / "clients.toml")
    team = clients.add("team-a")
    async with (
        gateway(upstreams.file, clients_file=clients.path, limits_store="local") as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        parameters = generation("a queued fox").parameters
        parameters.delivery = params_pb2.DELIVERY_INLINE
        submitted = await jobs_pb2_grpc.ImageJobsServiceStub(channel).SubmitImageJob(
            jobs_pb2.SubmitImageJobRequest(parameters=parameters),
            metadata=metadata(team),
            timeout=30,
        )
        done = await operations_pb2_grpc.OperationsStub(channel).WaitOperation(
            operations_pb2.WaitOperationRequest(
                name=submitted.name, timeout=duration_pb2.Duration(seconds=30)
            ),
            metadata=metadata(team),
            timeout=40,
        )
        assert done.done and not done.HasField("error"), done.error
        quota = await quota_pb2_grpc.QuotaServiceStub(channel).GetQuota(
            quota_pb2.GetQuotaRequest(), metadata=metadata(team), timeout=30
        )
    assert (upstreams.generations("openai-a"), upstreams.generations("openai-b")) == (1, 0)
    assert quota.spent_today_usd_micros > 0
    assert [(s.upstream, s.spent_today_usd_micros) for s in quota.upstream_spend] == [
        ("openai-a", quota.spent_today_usd_micros)
    ]
