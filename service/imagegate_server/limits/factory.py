"""Choosing the limiter backend from the settings."""

from __future__ import annotations

from imagegate_server.errors import StartupError
from imagegate_server.limits.base import Limiter
from imagegate_server.limits.memory import MemoryLimiter
from imagegate_server.limits.outage import OutagePolicy
from imagegate_server.limits.redis_limiter import RedisLimiter
from imagegate_server.limits.sqlite_limiter import SqliteLimiter
from imagegate_server.localdb import LocalDatabase
from imagegate_server.settings import Settings

_SCHEMES = ("redis", "rediss", "unix")


def uses_local_database(settings: Settings) -> bool:
    """Whether the limiter keeps its state in the local database (the default)."""
    return settings.redis_url is None and settings.limits_store == "local"


def build_limiter(settings: Settings, database: LocalDatabase | None = None) -> Limiter:
    """Redis when ``IMAGEGATE_REDIS_URL`` is set, else the local ``database`` (which
    :func:`uses_local_database` says the caller must open), else with
    ``IMAGEGATE_LIMITS_STORE=memory`` this process's memory.

    Raises :class:`StartupError` (one line, no URL in it: it may hold a password) for
    a URL that is set but empty or not a Redis URL. Nothing is connected here.
    """
    if settings.redis_url is None:
        if settings.limits_store == "memory":
            return MemoryLimiter()
        if database is None:
            raise ValueError("the local limits store needs the local database")
        return SqliteLimiter(database)
    url = settings.redis_url.get_secret_value().strip()
    if not url:
        raise StartupError("IMAGEGATE_REDIS_URL is set but empty; set a Redis URL or unset it")
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        raise StartupError("IMAGEGATE_REDIS_URL must start with redis://, rediss:// or unix://")
    try:
        return RedisLimiter.from_url(
            url,
            prefix=settings.redis_prefix,
            timeout_s=settings.redis_timeout_s,
            max_connections=settings.redis_max_connections,
            policy=OutagePolicy(
                rates_open=settings.redis_fail_open_rates,
                concurrency_open=settings.redis_fail_open_concurrency,
                budgets_open=settings.redis_fail_open_budgets,
            ),
        )
    except ValueError:
        # redis-py's message may quote the URL.
        raise StartupError("IMAGEGATE_REDIS_URL is not a valid Redis URL") from None
