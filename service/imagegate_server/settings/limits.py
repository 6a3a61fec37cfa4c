"""Settings of limits and spend: the gateway-wide ceiling, where limit state lives
(the local database in the data directory, memory, or Redis, and what an outage of
Redis admits), how long a call's hold lasts, and the prices budgets are charged at."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


class LimitsSettings(BaseModel):
    """The gateway-wide ceiling, the limiter's state (local or Redis) and prices."""

    gateway_images_per_minute: int | None = Field(default=None, ge=1)
    """One images-per-minute ceiling for the whole gateway (every client together;
    with Redis, every replica together), so the fleet sheds load itself before
    OpenAI's organisation limit answers 429. Unset: no ceiling."""

    data_dir: Path = Path("data")
    """Where the gateway keeps its local state: the limits database
    (``imagegate.sqlite3``, with its ``-wal`` and ``-shm`` files), the local result
    store (``results/``, unless ``store_dir`` says otherwise) and its generated
    link-signing key (``store-signing-key``). Relative to the working directory;
    created (mode 0700) if missing. Every worker of one
    ``serve`` shares it; two separate gateways must not (each would count the
    other's calls). A directory that cannot be created or written stops ``serve``."""
    limits_store: Literal["local", "memory"] = "local"
    """Where limits and spend live when ``IMAGEGATE_REDIS_URL`` is unset. ``local``
    (the default): the SQLite database in ``IMAGEGATE_DATA_DIR``, shared by every
    worker of one ``serve`` and kept across restarts. ``memory``: each process's
    own memory, forgotten on restart and counted per worker (for tests, or a
    read-only machine without budgets)."""

    redis_url: SecretStr | None = None
    """Redis for limits and spend shared by several replicas. One server:
    ``redis://host:6379/0``, ``rediss://`` (TLS) or ``unix:///path/redis.sock``;
    Redis Cluster: ``redis+cluster://host1:6379,host2:6379`` (``rediss+cluster://``;
    any nodes as seeds); Sentinel: ``redis+sentinel://host1:26379,host2:26379/mymaster``
    (``rediss+sentinel://``; the primary's name, then an optional ``/db``). May hold
    ``user:password@``, so it is a secret and never logged. Unset: limits are kept by
    this machine (see ``limits_store``), right for one replica."""
    redis_username: str | None = None
    """ACL user for the Redis servers (instead of the URL's)."""
    redis_password: SecretStr | None = None
    """Password for the Redis servers (instead of the URL's); typically the file
    ``imagegate_redis_password`` in the secrets directory. Never logged."""
    redis_sentinel_username: str | None = None
    """ACL user for the sentinels themselves (``redis+sentinel://``), when they
    require one."""
    redis_sentinel_password: SecretStr | None = None
    """Password for the sentinels themselves (their ``requirepass``), when they
    require one; the servers' own is ``redis_password``. Never logged."""
    redis_tls_ca_file: Path | None = None
    """CA bundle (PEM) that signed the Redis servers' certificates (``rediss*://``);
    unset: the system's trusted CAs. The host name or IP in the URL must match the
    certificate."""
    redis_tls_cert_file: Path | None = None
    """Client certificate (PEM) for Redis servers that require one
    (``tls-auth-clients yes``); with ``redis_tls_key_file``."""
    redis_tls_key_file: Path | None = None
    """Private key (PEM, unencrypted) of ``redis_tls_cert_file``."""
    redis_prefix: str = "imagegate:"
    """Prefix of every limiter key, so several gateways (or other apps) can share one
    Redis. No braces: they would break the per-client hash tags."""
    redis_timeout_s: float = Field(default=0.5, gt=0)
    """Upper bound of one Redis command, all included: connecting, redis-py's retry,
    a Cluster's redirections and topology refresh, a Sentinel lookup. Past it Redis
    counts as unreachable and the outage policy below applies; keep it short, since
    every call waits for the limiter before going upstream."""
    redis_max_connections: int = Field(default=64, ge=1)
    """Commands in flight to Redis per process (and connections per Redis server);
    more wait for a free one (up to 5 s, then count as an outage), so a burst of
    thousands of calls cannot exhaust Redis's client limit."""
    redis_fail_open_rates: bool = True
    """While Redis is unreachable or refusing commands, admit calls without counting
    their requests and images per minute (the upstream's own 429s still protect the
    organisation)."""
    redis_fail_open_concurrency: bool = True
    """While Redis is unreachable or refusing, admit calls without counting concurrent
    calls."""
    redis_fail_open_budgets: bool = False
    """While Redis is unreachable or refusing, admit calls of clients with a spend
    budget without checking it. Off (the default): they are refused with UNAVAILABLE, since spend
    cannot be taken back."""
    limit_hold_margin_s: float = Field(default=60.0, gt=0, le=86400)
    """How long an admitted call's concurrency slot and budget reservation outlive
    ``upstream_timeout_s`` (which bounds the whole call) before they expire on their
    own: the hold is the sum of the two. A call settles long before that; the hold
    only matters for a replica that died holding calls (killed, out of memory, its
    node gone), whose slots and reservations other replicas see until it passes.
    Shorter frees them sooner; it must still cover the settle after a call's
    deadline (one limiter round trip), or a live call could lose its slot."""

    prices_file: Path | None = None
    """An operator price file (TOML, the schema of the built-in table
    ``imagegate_server/pricing/prices.toml``) merged over the built-in table, entry by
    entry: to change a price, add a model or an alias before a release does. Read
    once at start-up; a malformed file stops ``serve`` with one line naming the field."""
    unpriced_models: Literal["refuse", "reserve_max"] = "refuse"
    """What a call for a model the price table cannot price does when its client has
    a spend budget. ``refuse`` (the default): the call is refused, since a reservation
    silently skipped is a budget silently not enforced (LiteLLM #35524 let exactly
    such calls through). ``reserve_max``: the call reserves what the table's dearest
    model would cost for it, and settles at that estimate (no price, no better
    figure), so budgets hold while new models pass through."""

    @field_validator("redis_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not contain '{' or '}' (keys carry per-client hash tags)")
        return value
