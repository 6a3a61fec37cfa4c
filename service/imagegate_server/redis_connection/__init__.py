"""A Redis connection from the settings: the one way the gateway talks to Redis.

Whatever keeps shared state in Redis (the limiter and its scripts, ``imagegate
clients spend``, and what comes later: jobs, idempotency keys, sweeper locks) takes
a :class:`RedisConnection` from :func:`connect` and goes through its methods:

- :meth:`~RedisConnection.run` a Lua script (:class:`Script`) on keys of one hash slot
- :meth:`~RedisConnection.run_many` the same, pipelined, for many key sets
- :meth:`~RedisConnection.scan` keys by pattern, on every primary of a Cluster
- :meth:`~RedisConnection.call` one command on one key (``SET NX PX`` for a lock)

Keys come only from :class:`KeySpace` (a :class:`Key` type mypy checks), each with a
hash tag; :meth:`~RedisConnection.run` refuses keys of different slots on every
shape, so what runs on one server runs on a Cluster.

Shapes (``IMAGEGATE_REDIS_URL``, :mod:`.urls`): one server (``redis://``,
``rediss://``, ``unix://``), Redis Cluster (``redis+cluster://``,
``rediss+cluster://``) and Sentinel (``redis+sentinel://``, ``rediss+sentinel://``),
each through redis-py's own client (:mod:`.clients`). Every command is bounded by
``IMAGEGATE_REDIS_TIMEOUT_S`` in all, and every failure is a :class:`StoreFailure`
saying whether Redis is unreachable or answering but refusing, and why
(:mod:`.failures`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegate_server.errors import StartupError
from imagegate_server.redis_connection.clients import RedisOptions
from imagegate_server.redis_connection.connection import RedisConnection, Script
from imagegate_server.redis_connection.failures import StoreFailure
from imagegate_server.redis_connection.keys import Key, KeySpace, slot
from imagegate_server.redis_connection.urls import RedisUrlError, Target

if TYPE_CHECKING:
    from imagegate_server.settings import Settings

__all__ = [
    "Key",
    "KeySpace",
    "RedisConnection",
    "RedisOptions",
    "RedisUrlError",
    "Script",
    "StoreFailure",
    "Target",
    "connect",
    "options_from",
    "slot",
]


def options_from(settings: Settings) -> RedisOptions:
    """The settings the URL does not carry."""
    password, sentinel_password = settings.redis_password, settings.redis_sentinel_password
    return RedisOptions(
        timeout_s=settings.redis_timeout_s,
        max_connections=settings.redis_max_connections,
        username=settings.redis_username,
        password=password.get_secret_value() if password else None,
        sentinel_username=settings.redis_sentinel_username,
        sentinel_password=sentinel_password.get_secret_value() if sentinel_password else None,
        tls_ca_file=settings.redis_tls_ca_file,
        tls_cert_file=settings.redis_tls_cert_file,
        tls_key_file=settings.redis_tls_key_file,
    )


def connect(settings: Settings) -> RedisConnection:
    """The connection ``IMAGEGATE_REDIS_URL`` and the ``IMAGEGATE_REDIS_*`` settings
    describe; connects on first use. Raises :class:`StartupError` (one line, never
    the URL: it may hold a password) when they cannot work, or when the URL is unset."""
    if settings.redis_url is None:
        raise StartupError("IMAGEGATE_REDIS_URL is not set")
    try:
        return RedisConnection.from_url(
            settings.redis_url.get_secret_value(), options_from(settings)
        )
    except ValueError as error:
        # Ours say what is wrong without the URL; redis-py's might quote it.
        detail = str(error) if isinstance(error, RedisUrlError) else "is not a valid Redis URL"
        raise StartupError(f"IMAGEGATE_REDIS_URL {detail}") from None
