"""Choosing the limiter backend from the settings."""

from __future__ import annotations

from imagegate_server.limits.base import Limiter
from imagegate_server.limits.memory import MemoryLimiter
from imagegate_server.limits.outage import OutagePolicy
from imagegate_server.limits.redis_limiter import RedisLimiter
from imagegate_server.limits.sqlite_limiter import SqliteLimiter
from imagegate_server.localdb import LocalDatabase
from imagegate_server.redis_connection import connect
from imagegate_server.settings import Settings


def uses_local_database(settings: Settings) -> bool:
    """Whether the limiter keeps its state in the local database (the default)."""
    return settings.redis_url is None and settings.limits_store == "local"


def build_limiter(settings: Settings, database: LocalDatabase | None = None) -> Limiter:
    """Redis when ``IMAGEGATE_REDIS_URL`` is set, else the local ``database`` (which
    :func:`uses_local_database` says the caller must open), else with
    ``IMAGEGATE_LIMITS_STORE=memory`` this process's memory.

    Raises :class:`StartupError` (one line, no URL in it: it may hold a password) for
    Redis settings that cannot work. Nothing is connected here.
    """
    if settings.redis_url is None:
        if settings.limits_store == "memory":
            return MemoryLimiter()
        if database is None:
            raise ValueError("the local limits store needs the local database")
        return SqliteLimiter(database)
    return redis_limiter(settings)


def redis_limiter(settings: Settings) -> RedisLimiter:
    """The Redis limiter of ``IMAGEGATE_REDIS_URL`` (which must be set) and the
    ``IMAGEGATE_REDIS_*`` settings."""
    return RedisLimiter(
        connect(settings),
        prefix=settings.redis_prefix,
        policy=OutagePolicy(
            rates_open=settings.redis_fail_open_rates,
            concurrency_open=settings.redis_fail_open_concurrency,
            budgets_open=settings.redis_fail_open_budgets,
        ),
    )
