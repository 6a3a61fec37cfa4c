"""The limiter on the Redis deployments teams run: a Cluster seeded with any node, a
plain URL that names a Cluster node by mistake, Sentinel, ACL users, TLS, and Redis
answering with errors (each a refusal named once, never "unreachable")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_support import RedisServer
from support.redis_deployments import Cluster, RedisNode, Sentinels, Tls

from imagegate_server.limits import (
    Admission,
    Budget,
    LimiterUnavailable,
    RateLimit,
    RedisLimiter,
)
from imagegate_server.limits.factory import redis_limiter
from imagegate_server.redis_connection import StoreFailure
from imagegate_server.settings import Settings

LOGGER = "imagegate_server.limits.outage"
PASSWORD = "s3cret-ACL-PASSWORD"
BUDGET = Budget("daily_budget", "day", 10_000_000)
# The rights the limiter needs (the operators' guide documents this line): its
# scripts, SCAN and TIME for `clients spend`, and on a Cluster what redis-py's
# cluster client reads at start (CLUSTER SLOTS, COMMAND).
ACL_RIGHTS = (
    "~imagegate:* -@all +@read +@write +@scripting +@connection +time "
    "+cluster|slots +cluster|shards +command -@dangerous"
)


def call(client: str) -> Admission:
    rate = RateLimit("requests_per_minute", 600, 600, 1, client)
    return Admission(client, rates=(rate,), max_concurrent=5, budgets=(BUDGET,), reserve_micros=100)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, _secrets_dir=None, **values)  # type: ignore[call-arg]


def spread(cluster: Cluster, limiter: RedisLimiter, count: int = 5) -> list[str]:
    """``count`` (at least the number of primaries) client names whose keys live on
    every primary of ``cluster``."""
    primaries = {node.port for node in cluster.primaries()}
    picked: list[str] = []
    covered: set[int] = set()
    for i in range(10_000):
        name = f"team-{i}"
        port = cluster.node_of(limiter.client_keys(name)[0]).port
        if port not in covered or covered == primaries:  # every primary first
            picked.append(name)
            covered.add(port)
        if len(picked) >= count and covered == primaries:
            return picked
    raise AssertionError("no spread of client names found")


@pytest.fixture
async def seeded(redis_cluster: Cluster, prefix: str) -> AsyncIterator[list[RedisLimiter]]:
    """One limiter per node of the Cluster, each with only that node as its seed."""
    limiters = [
        RedisLimiter.from_url(redis_cluster.url(node), prefix=prefix, timeout_s=2.0)
        for node in redis_cluster.nodes
    ]
    yield limiters
    for limiter in limiters:
        await limiter.aclose()


async def test_a_limiter_seeded_with_any_node_serves_clients_on_every_node(
    redis_cluster: Cluster, seeded: list[RedisLimiter]
) -> None:
    clients = spread(redis_cluster, seeded[0])
    homes = {redis_cluster.node_of(seeded[0].client_keys(c)[0]).port for c in clients}
    assert len(homes) == 3, "the clients' keys must live on all three primaries"
    for round_, limiter in enumerate(seeded, start=1):
        for client in clients:
            ticket = await limiter.admit(call(client))
            assert ticket.accounted, (client, limiter.connection.location)
            await limiter.settle(ticket, 1000)
        assert limiter.state == "up"
        listing = await limiter.list_spend()  # SCAN of every primary
        assert [c.client for c in listing.clients] == sorted(clients)
        assert {c.spent_today_micros for c in listing.clients} == {1000 * round_}


async def test_a_plain_url_at_a_cluster_node_is_refused_saying_use_redis_cluster(
    redis_cluster: Cluster,
    seeded: list[RedisLimiter],
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    node = redis_cluster.nodes[0]
    clients = spread(redis_cluster, seeded[0], count=6)
    here = [c for c in clients if redis_cluster.node_of(seeded[0].client_keys(c)[0]) is node]
    elsewhere = [c for c in clients if c not in here]
    plain = RedisLimiter.from_url(node.url, prefix=prefix, probe_interval_s=0.05)
    try:
        with pytest.raises(LimiterUnavailable, match="refusing commands"):
            await plain.admit(call(elsewhere[0]))  # Redis answers MOVED
        for _ in range(3):
            await asyncio.sleep(0.06)  # probes: none may flap back to "up"
            for client in clients:  # those whose slot is on this node too: no half service
                with pytest.raises(LimiterUnavailable):
                    await plain.admit(call(client))
                assert not (
                    await plain.admit(Admission(client, rates=call(client).rates))
                ).accounted
        assert plain.state == "refusing"
    finally:
        await plain.aclose()
    (line,) = warnings(caplog)
    assert "MOVED" in line and "redis+cluster://" in line and "unreachable" not in line
    assert [r for r in caplog.records if r.levelno == logging.INFO] == []


async def test_a_cluster_url_at_a_single_server_says_it_is_not_a_cluster(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    limiter = RedisLimiter.from_url(f"redis+cluster://127.0.0.1:{redis_server.port}", prefix=prefix)
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.admit(call("team-a"))
        assert limiter.state == "refusing"
    finally:
        await limiter.aclose()
    (line,) = warnings(caplog)
    assert "not in cluster mode" in line and "use redis://" in line


def _add_user(node: RedisNode, name: str, rights: str) -> None:
    with node.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}", *rights.split()
        )


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[RedisNode]:
    node = RedisNode(tmp_path, "acl")
    node.start()
    _add_user(node, "imagegate", ACL_RIGHTS)
    _add_user(node, "noscripts", ACL_RIGHTS.replace("+@scripting ", ""))
    yield node
    node.stop()


async def test_an_acl_user_with_the_documented_rights_runs_the_limiter(
    acl_server: RedisNode, redis_cluster: Cluster, prefix: str
) -> None:
    for node in redis_cluster.nodes:  # ACLs are per node, also in a Cluster
        _add_user(node, "imagegate", ACL_RIGHTS)
    for url in (acl_server.url, redis_cluster.url()):
        limiter = redis_limiter(
            settings(
                redis_url=url,
                redis_username="imagegate",
                redis_password=PASSWORD,
                redis_prefix=f"imagegate:{prefix}",
                redis_timeout_s=2.0,
            )
        )
        try:
            ticket = await limiter.admit(call("team-a"))
            assert ticket.accounted
            await limiter.settle(ticket, 250)
            status = await limiter.status("team-a", call("team-a").rates, 5, (BUDGET,))
            assert status.spent_today_micros == 250
            listing = await limiter.list_spend()
            assert [(c.client, c.spent_today_micros) for c in listing.clients] == [("team-a", 250)]
            assert limiter.state == "up"
        finally:
            await limiter.aclose()


@pytest.mark.parametrize(
    ("user", "password", "code", "says"),
    [
        ("imagegate", "wrong-" + PASSWORD, "WRONGPASS", "IMAGEGATE_REDIS_PASSWORD"),
        ("noscripts", PASSWORD, "NOPERM", "evalsha"),
    ],
)
async def test_a_user_redis_refuses_is_named_once_and_budgets_fail_closed(
    acl_server: RedisNode,
    caplog: pytest.LogCaptureFixture,
    user: str,
    password: str,
    code: str,
    says: str,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    limiter = redis_limiter(
        settings(
            redis_url=acl_server.url,
            redis_username=user,
            redis_password=password,
            redis_prefix="imagegate:",
        )
    )
    limiter._health.probe_interval_s = 0.05
    try:
        for _ in range(4):
            with pytest.raises(LimiterUnavailable, match="refusing commands"):
                await limiter.admit(call("team-a"))
            rates_only = Admission("team-a", rates=call("team-a").rates)
            assert not (await limiter.admit(rates_only)).accounted  # rates fail open
            await asyncio.sleep(0.06)
        assert limiter.state == "refusing" and limiter.problem is not None
        assert code in limiter.problem
    finally:
        await limiter.aclose()
    (line,) = warnings(caplog)
    assert line.startswith(
        f"limits store refusing commands (redis://127.0.0.1:{acl_server.port}): "
    )
    assert code in line and says in line
    assert PASSWORD not in caplog.text


async def test_out_of_memory_is_a_refusal_until_redis_has_room_again(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    limiter = RedisLimiter.from_url(own_redis.url, prefix=prefix, probe_interval_s=0.05)
    admin = redis.Redis.from_url(own_redis.url)
    try:
        assert (await limiter.admit(call("team-a"))).accounted
        admin.config_set("maxmemory", 1)  # noeviction: every write is refused
        with pytest.raises(LimiterUnavailable, match="refusing commands"):
            await limiter.admit(call("team-a"))
        assert limiter.state == "refusing"
        admin.config_set("maxmemory", 0)
        await asyncio.sleep(0.06)
        assert (await limiter.admit(call("team-a"))).accounted
        assert limiter.state == "up"
    finally:
        admin.close()
        await limiter.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 2, messages
    assert "(OOM)" in messages[0] and "maxmemory" in messages[0]
    assert messages[1].startswith(
        f"limits store working again (redis://127.0.0.1:{own_redis.port}, after "
    )


async def test_a_url_at_a_replica_is_refused_as_read_only(
    redis_sentinels: Sentinels, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    primary = redis_sentinels.current_primary()
    replica = (
        redis_sentinels.replica if primary is redis_sentinels.primary else redis_sentinels.primary
    )
    limiter = RedisLimiter.from_url(replica.url, prefix=prefix)
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.admit(call("team-a"))
        assert limiter.state == "refusing"
    finally:
        await limiter.aclose()
    (line,) = warnings(caplog)
    assert "READONLY" in line and "redis+sentinel://" in line


async def test_sentinels_with_passwords_of_their_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sentinel_password = "sentinel-" + PASSWORD
    with Sentinels(tmp_path, password=PASSWORD, sentinel_password=sentinel_password) as sentinels:
        for given, state in ((sentinel_password, "up"), ("wrong", "refusing")):
            limiter = redis_limiter(
                settings(
                    redis_url=sentinels.url,
                    redis_password=PASSWORD,
                    redis_sentinel_password=given,
                    redis_timeout_s=2.0,
                )
            )
            try:
                with contextlib.suppress(LimiterUnavailable):  # refused: budgets fail closed
                    await limiter.settle(await limiter.admit(call("team-a")), 5)
                assert limiter.state == state
            finally:
                await limiter.aclose()
    (line,) = warnings(caplog)
    assert "sentinels refused" in line and "IMAGEGATE_REDIS_SENTINEL_PASSWORD" in line
    assert PASSWORD not in caplog.text


def tls_limiter(url: str, tls: Tls, prefix: str) -> RedisLimiter:
    """A limiter on ``url`` trusting the test's CA, presenting its client certificate."""
    return redis_limiter(
        settings(
            redis_url=url,
            redis_tls_ca_file=tls.ca_file,
            redis_tls_cert_file=tls.client_cert,
            redis_tls_key_file=tls.client_key,
            redis_prefix=prefix,
            redis_timeout_s=2.0,
        )
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(tls: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    """TLS only, and a client certificate signed by the CA required."""
    node = RedisNode(tmp_path_factory.mktemp("tls-redis"), "tls", tls=tls, tls_auth_clients="yes")
    node.start()
    yield node
    node.stop()


async def test_tls_with_a_private_ca_and_a_client_certificate(
    tls: Tls, tls_server: RedisNode, prefix: str
) -> None:
    limiter = tls_limiter(tls_server.url, tls, prefix)
    try:
        await limiter.settle(await limiter.admit(call("team-a")), 42)
        assert (await limiter.status("team-a", (), None, (BUDGET,))).spent_today_micros == 42
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("missing", ["ca", "client certificate"])
async def test_tls_that_cannot_be_established_is_named(
    tls: Tls, tls_server: RedisNode, tmp_path: Path, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    values: dict[str, Any] = {"redis_url": tls_server.url, "redis_timeout_s": 2.0}
    if missing == "ca":  # the server's certificate cannot be verified
        other = Tls.make(tmp_path / "other")
        values |= {
            "redis_tls_ca_file": other.ca_file,
            "redis_tls_cert_file": tls.client_cert,
            "redis_tls_key_file": tls.client_key,
        }
    else:  # the server wants a client certificate and gets none
        values["redis_tls_ca_file"] = tls.ca_file
    limiter = redis_limiter(settings(**values))
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.admit(call("team-a"))
    finally:
        await limiter.aclose()
    (line,) = warnings(caplog)
    assert "certificate" in line and "IMAGEGATE_REDIS_TLS_CERT_FILE" in line, line
    if missing == "ca":
        assert "the TLS handshake failed" in line, line
    # else the server's alert, or the reset that follows it: which comes first is a race


async def test_a_tls_cluster(tls: Tls, tmp_path: Path, prefix: str) -> None:
    with Cluster(tmp_path, tls=tls) as cluster:
        limiter = tls_limiter(cluster.url(cluster.nodes[1]), tls, prefix)
        try:
            clients = spread(cluster, limiter)
            for client in clients:
                await limiter.settle(await limiter.admit(call(client)), 7)
            listing = await limiter.list_spend()
            assert [(c.client, c.spent_today_micros) for c in listing.clients] == [
                (c, 7) for c in sorted(clients)
            ]
        finally:
            await limiter.aclose()


async def test_a_tls_sentinel_set(tls: Tls, tmp_path: Path, prefix: str) -> None:
    with Sentinels(tmp_path, tls=tls) as sentinels:  # TLS to the sentinels and the servers
        limiter = tls_limiter(sentinels.url, tls, prefix)
        try:
            await limiter.settle(await limiter.admit(call("team-a")), 9)
            listing = await limiter.list_spend()
            assert [(c.client, c.spent_today_micros) for c in listing.clients] == [("team-a", 9)]
            assert limiter.connection.location.startswith("rediss+sentinel://")
        finally:
            await limiter.aclose()


async def test_a_cluster_seed_that_never_answers_times_out_into_the_policy(prefix: str) -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    limiter = RedisLimiter.from_url(
        f"redis+cluster://127.0.0.1:{port}", prefix=prefix, timeout_s=0.2
    )
    try:
        ticket = await asyncio.wait_for(limiter.admit(Admission("a", rates=call("a").rates)), 10)
        assert not ticket.accounted
        assert limiter.state == "unreachable" and limiter.problem == "no answer within 0.2 s"
        with pytest.raises(LimiterUnavailable, match="unreachable"):
            await asyncio.wait_for(limiter.admit(call("a")), 10)
    finally:
        await limiter.aclose()
        silent.close()
        await silent.wait_closed()


async def test_connection_failures_say_unreachable_and_why(prefix: str) -> None:
    connection = RedisLimiter.from_url(
        "redis+sentinel://127.0.0.1:9/main", prefix=prefix
    ).connection
    try:
        with pytest.raises(StoreFailure) as caught:
            await connection.server_time_s()
        assert caught.value.state == "unreachable"
    finally:
        await connection.aclose()
