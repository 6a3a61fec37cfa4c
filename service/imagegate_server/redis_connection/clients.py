"""redis-py's own client for each shape of deployment, with our timeouts and pools.

    single    ``redis.asyncio.Redis`` on one connection pool
    cluster   ``redis.asyncio.cluster.RedisCluster``: learns the slots from any seed,
              follows MOVED and ASK, re-reads the topology after a failover
    sentinel  ``redis.asyncio.sentinel.Sentinel(...).master_for(name)``: asks the
              sentinels for the primary on every new connection, drops connections
              to a primary that was demoted (READONLY), so a failover needs no restart

Retries: one, at once, for a connection that broke (a pooled connection a restart
closed, a primary that just moved). redis-py's cluster client also re-reads the
topology between its attempts and sleeps 0.25 s after CLUSTERDOWN; however many
rounds that takes, :class:`~.connection.RedisConnection` cuts every command at
``timeout_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from imagegate_server.redis_connection.urls import RedisUrlError, Target


@dataclass(frozen=True)
class RedisOptions:
    """What the URL does not say (from the ``IMAGEGATE_REDIS_*`` settings)."""

    timeout_s: float = 0.5
    max_connections: int = 64
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


Client = redis.asyncio.Redis | RedisCluster


def build(target: Target, options: RedisOptions) -> tuple[Client, Sentinel | None]:
    """The client (and, for Sentinel, the sentinels' client to close with it).
    Connects nothing yet."""
    username, password = _credentials(target, options)
    common: dict[str, Any] = {
        "socket_timeout": options.timeout_s,
        "socket_connect_timeout": options.timeout_s,
        "retry": Retry(NoBackoff(), 1),
        "username": username,
        "password": password,
    }
    tls = _tls(target, options)
    if target.shape == "cluster":
        return (
            RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
                max_connections=options.max_connections,
                decode_responses=True,
                ssl=target.tls,
                **common,
                **tls,
            ),
            None,
        )
    if target.shape == "sentinel":
        assert target.service is not None  # urls.parse requires it
        sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            list(target.hosts),
            sentinel_kwargs={
                "socket_timeout": options.timeout_s,
                "socket_connect_timeout": options.timeout_s,
                "retry": Retry(NoBackoff(), 0),
                "username": options.sentinel_username,
                "password": options.sentinel_password,
                "ssl": target.tls,
                **tls,
            },
        )
        primary = sentinels.master_for(
            target.service,
            redis_class=redis.asyncio.Redis,
            db=target.db,
            max_connections=options.max_connections,
            decode_responses=True,
            ssl=target.tls,
            **common,
            **tls,
        )
        return primary, sentinels
    connection: type[Connection] | type[UnixDomainSocketConnection]
    where: dict[str, Any]
    if target.socket_path is not None:
        connection, where = UnixDomainSocketConnection, {"path": target.socket_path}
    else:
        host, port = target.hosts[0]
        connection = SSLConnection if target.tls else Connection
        where = {"host": host, "port": port}
    pool = ConnectionPool(
        connection_class=connection,
        max_connections=options.max_connections,
        db=target.db,
        decode_responses=True,
        **where,
        **common,
        **tls,
    )
    return redis.asyncio.Redis.from_pool(pool), None


def _credentials(target: Target, options: RedisOptions) -> tuple[str | None, str | None]:
    if options.password is not None and target.password is not None:
        raise RedisUrlError(
            "holds a password and IMAGEGATE_REDIS_PASSWORD is set too: keep one of them"
        )
    if options.username is not None and target.username is not None:
        raise RedisUrlError(
            "holds a username and IMAGEGATE_REDIS_USERNAME is set too: keep one of them"
        )
    return (options.username or target.username), (options.password or target.password)


def _tls(target: Target, options: RedisOptions) -> dict[str, Any]:
    files = {
        "IMAGEGATE_REDIS_TLS_CA_FILE": options.tls_ca_file,
        "IMAGEGATE_REDIS_TLS_CERT_FILE": options.tls_cert_file,
        "IMAGEGATE_REDIS_TLS_KEY_FILE": options.tls_key_file,
    }
    given = [name for name, path in files.items() if path is not None]
    if not target.tls:
        if given:
            raise RedisUrlError(
                f"does not use TLS but {given[0]} is set: use rediss:// "
                "(rediss+cluster://, rediss+sentinel://) or unset it"
            )
        return {}
    if (options.tls_cert_file is None) != (options.tls_key_file is None):
        raise RedisUrlError(
            "needs both IMAGEGATE_REDIS_TLS_CERT_FILE and IMAGEGATE_REDIS_TLS_KEY_FILE "
            "for a client certificate, or neither"
        )
    for name in given:
        path = files[name]
        if path is not None and not path.is_file():
            raise RedisUrlError(f"uses TLS and {name} is not a readable file")
    return {
        "ssl_ca_certs": str(options.tls_ca_file) if options.tls_ca_file else None,
        "ssl_certfile": str(options.tls_cert_file) if options.tls_cert_file else None,
        "ssl_keyfile": str(options.tls_key_file) if options.tls_key_file else None,
    }
