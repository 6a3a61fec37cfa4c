"""Gateways on the Redis deployments teams run: replicas each seeded with a different
node of a Redis Cluster serve every client whatever node its keys live on, and
``imagegate clients spend`` reads them all; a Redis that refuses the password is
called what it is in the log, the metrics and the callers' status.

Real parts only: ``imagegate serve`` processes, Debian's redis-server (a Cluster made
by ``redis-cli --cluster create``), the emulator in the test's process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
from gateway.tenancy_support import ClientsFile
from limits.redis_support import RedisServer
from prometheus_client.parser import text_string_to_metric_families
from replica_support import (
    GENERATIONS,
    assert_never_logged,
    bearer,
    error_reason,
    generation,
    replicas,
    token_secret,
)
from support.redis_deployments import Cluster, Sentinels
from support.serve import MODULE_COMMAND, clean_env, free_port

from imagegate_server.emulator import Emulator
from imagegate_server.redis_connection import KeySpace

pytestmark = pytest.mark.slow

PREFIX = "anynode:"


def home_port(cluster: Cluster, client: str) -> int:
    """The port of the primary that holds ``client``'s limiter keys."""
    (key,) = KeySpace(PREFIX).keys(f"c:{quote(client, safe='')}", "spend")
    return cluster.node_of(key).port


async def test_gateways_seeded_with_any_node_of_a_cluster_serve_every_client(
    tmp_path: Path, redis_cluster: Cluster, emulator: Emulator, clients: ClientsFile
) -> None:
    primaries = redis_cluster.primaries()
    by_home: dict[int, list[str]] = {}
    for i in range(30):
        by_home.setdefault(home_port(redis_cluster, f"team-{i}"), []).append(f"team-{i}")
    names = [group[j] for j in range(2) for group in by_home.values()][:5]
    # Five clients with budgets, their keys on all three primaries.
    assert {home_port(redis_cluster, n) for n in names} == {p.port for p in primaries}
    tokens = {name: clients.add(name, daily_budget_usd="1.00") for name in names}
    seeds = [redis_cluster.url(node) for node in primaries]  # replica i: node i alone
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=seeds, redis_prefix=PREFIX,
    ) as fleet:  # fmt: skip
        costs: dict[str, int] = dict.fromkeys(names, 0)
        for replica in fleet:
            for name, token in tokens.items():
                request = generation(f"{name} via replica {replica.index}")
                answer = await replica.create(request, bearer(token))
                costs[name] += answer.result.cost.usd_micros
        for replica in fleet:
            for name, token in tokens.items():
                quota = await replica.quota(bearer(token))
                assert (quota.client, quota.spent_today_usd_micros) == (name, costs[name])
        assert_never_logged(fleet, [*tokens.values(), *map(token_secret, tokens.values())])
        outages = [line for r in fleet for line in r.serve.lines if "limits store" in line]
        assert outages == []
    assert len(emulator.journal.by_path(GENERATIONS)) == 3 * len(names)

    # The operator's view, from Redis itself: a SCAN of every primary.
    env = clean_env(
        IMAGEGATE_REDIS_URL=redis_cluster.url(primaries[2]),
        IMAGEGATE_REDIS_PREFIX=PREFIX,
        IMAGEGATE_CLIENTS_FILE=str(clients.path),
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [*MODULE_COMMAND, "clients", "spend", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["store"] == f"redis redis+cluster://{primaries[2].address}"
    rows = [(c["client"], c["spent_today_usd_micros"], c["daily_budget_usd_micros"])
            for c in listing["clients"]]  # fmt: skip
    assert rows == [(name, costs[name], 1_000_000) for name in sorted(names)]


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name + "".join(f"|{v}" for v in sample.labels.values()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("imagegate_limiter_")
    }


async def test_a_wrong_redis_password_is_a_refusal_for_callers_the_log_and_the_metrics(
    tmp_path: Path, emulator: Emulator, clients: ClientsFile
) -> None:
    password = "redis-SECRET-pw-9876543210"
    budgeted = clients.add("budgeted", daily_budget_usd="10")
    rated = clients.add("rated", requests_per_minute=2)
    directory = tmp_path / "redis"
    directory.mkdir()
    metrics_port = free_port()
    with RedisServer(directory, password=password) as server:
        wrong = f"redis://:not-{password}@127.0.0.1:{server.port}/0"
        async with replicas(
            tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
            redis_url=wrong, count=1, metrics_port=str(metrics_port),
        ) as fleet:  # fmt: skip
            (replica,) = fleet
            for attempt in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await replica.create(generation(f"budget {attempt}"), bearer(budgeted))
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert error_reason(caught.value) == "LIMITER_UNAVAILABLE"
                assert "refusing" in (caught.value.details() or "")
                # Rates fail open: 3 calls against 2 per minute, all served uncounted.
                assert (await replica.create(generation(f"rate {attempt}"), bearer(rated))).result
                await asyncio.sleep(0.5)
            metrics = await asyncio.to_thread(_metrics, metrics_port)
            warnings = [r for r in replica.records() if r.get("level") == "WARNING"]
            assert_never_logged(fleet, [password, budgeted, rated])
        # The operator's command says the same, with the reason, and exits 1.
        spend = await asyncio.to_thread(
            subprocess.run,
            [*MODULE_COMMAND, "clients", "spend"],
            cwd=tmp_path, env=clean_env(IMAGEGATE_REDIS_URL=wrong), capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
    assert spend.returncode == 1
    assert spend.stderr.startswith(
        f"imagegate clients: cannot read spend from Redis at redis://127.0.0.1:{server.port}: "
        "Redis refused the username or password (WRONGPASS)"
    )
    assert password not in spend.stderr + spend.stdout
    assert metrics["imagegate_limiter_up"] == 0
    assert metrics["imagegate_limiter_state|refusing"] == 1
    assert metrics["imagegate_limiter_state|unreachable"] == 0
    assert metrics["imagegate_limiter_state|up"] == 0
    (line,) = [r["msg"] for r in warnings if r["msg"].startswith("limits store")]
    assert line.startswith(f"limits store refusing commands (redis://127.0.0.1:{server.port}): ")
    assert "WRONGPASS" in line and "unreachable" not in line


async def test_gateways_follow_a_sentinel_failover_without_a_restart(
    tmp_path: Path, emulator: Emulator, clients: ClientsFile
) -> None:
    budgeted = bearer(clients.add("budgeted", daily_budget_usd="10"))
    rated = bearer(clients.add("rated", requests_per_minute=600))
    with Sentinels(tmp_path / "sentinels", down_after_ms=1000) as sentinels:
        async with replicas(
            tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
            redis_url=sentinels.url, count=2,
        ) as fleet:  # fmt: skip
            for replica in fleet:
                await replica.create(generation("before"), budgeted)
            primary = sentinels.current_primary()
            await asyncio.to_thread(primary.stop, kill=True)

            refused = served = slowest = 0.0
            serving = [False, False]  # each replica's last budgeted call was served
            deadline = time.monotonic() + 90
            for i in range(10_000):  # until both replicas use the promoted replica
                replica = fleet[i % 2]
                started = time.monotonic()
                try:
                    await replica.create(generation(f"during {i}"), budgeted)
                    served += 1
                    serving[i % 2] = True
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    assert error_reason(error) == "LIMITER_UNAVAILABLE"
                    refused += 1
                    serving[i % 2] = False
                # Rates fail open: the other client is served all along.
                await replica.create(generation(f"rated {i}"), rated)
                slowest = max(slowest, time.monotonic() - started)
                # Each replica finds Redis again on its own probe: one may still
                # refuse after the other served several calls.
                if served >= 4 and all(serving):
                    break
                assert time.monotonic() < deadline, "the gateways never used the new primary"
                await asyncio.sleep(0.05)
            assert sentinels.current_primary() is not primary
            for replica in fleet:  # both, without a restart
                await replica.create(generation("after"), budgeted)
    print(
        f"\nsentinel failover: {int(refused)} budgeted calls refused, slowest pair {slowest:.2f} s"
    )
    assert refused > 0, "no call met the failover"
    for replica in fleet:
        lines = [r["msg"] for r in replica.records() if r.get("msg", "").startswith("limits store")]
        assert len(lines) == 2, lines
        assert lines[0].startswith("limits store unreachable (")
        assert lines[1].startswith("limits store working again (redis+sentinel://")
