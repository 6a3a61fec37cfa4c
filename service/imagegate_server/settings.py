"""Configuration, only through pydantic-settings.

Sources, highest first: ``IMAGEGATE_*`` environment variables, a ``.env`` file in
the working directory, files in the secrets directory (``IMAGEGATE_SECRETS_DIR``,
default ``/run/secrets``; a file named like the environment variable, in lower
case: ``imagegate_openai_api_key``, since pydantic-settings applies the prefix to
secret file names too).

A key source that is configured but yields no key (an empty value, an empty or
unreadable key file) stops the start-up: silently serving from the offline
emulator instead would look like a working gateway to OpenAI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imagegate_server.errors import StartupError

MIB = 1024 * 1024
OPENAI_API_HOST = "api.openai.com"


def invalid_fields(error: ValidationError) -> str:
    """The settings a validation error is about, for one line: names only, never
    values (one may be the key)."""
    return ", ".join(".".join(str(part) for part in e["loc"]) for e in error.errors())


def _secrets_dir() -> str | None:
    # Only an existing directory: pydantic-settings warns about a missing one.
    path = os.environ.get("IMAGEGATE_SECRETS_DIR", "/run/secrets")
    return path if os.path.isdir(path) else None


class Settings(BaseSettings):
    """Every knob of the gateway. Each field is ``IMAGEGATE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGEGATE_",
        env_file=".env",
        extra="ignore",
        secrets_dir=_secrets_dir(),
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    """Address the gRPC server binds."""
    port: int = Field(default=50051, ge=0, le=65535)
    """gRPC port; 0 picks a free one (see ``--port-file``)."""

    openai_api_key: SecretStr | None = None
    """The OpenAI key (also from ``imagegate_openai_api_key`` in the secrets directory).
    Unset, and no key file: the embedded emulator is the upstream. Set but empty: an error."""
    openai_api_key_file: Path | None = None
    """A file holding the key (a mounted secret); read once at start-up. Missing,
    unreadable or empty: an error."""
    openai_base_url: str = "https://api.openai.com/v1"
    """The Images API base URL (any OpenAI-compatible server). Ignored in emulator mode."""
    openai_organization: str | None = None
    """Sent as ``OpenAI-Organization`` when set."""
    openai_project: str | None = None
    """Sent as ``OpenAI-Project`` when set."""

    default_model: str = "gpt-image-2"
    """Model for generations and edits that name none (the live API wants one)."""
    default_variation_model: str = "dall-e-2"
    """Model for variations that name none: dall-e-2 is the only model that ever
    served them, and OpenAI retired it, so variations need a compatible server (such
    as the emulator) that still offers it."""
    refuse_retired_models: Literal["auto", "on", "off"] = "auto"
    """Answer calls for a model past its OpenAI shutdown date locally (NOT_FOUND with
    the replacement) instead of sending them upstream. ``auto``: on when the upstream
    is OpenAI itself (``api.openai.com``), off for the emulator and other compatible
    servers, which may still serve retired models."""
    # NoDecode: the validator below reads the variable's text itself, so that "a,b"
    # works; pydantic-settings would otherwise insist on JSON and fail on it.
    extra_parameters: Annotated[frozenset[str], NoDecode] = frozenset()
    """Allowlist of ``extra_parameters`` keys forwarded upstream (``a,b`` or a JSON list)."""

    upstream_timeout_s: float = Field(default=300.0, gt=0)
    """Upper bound of one upstream call; the caller's deadline may shorten it."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Upper bound of establishing a connection to the upstream."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of connect errors and 429s (never of anything that may have billed)."""
    retry_backoff_s: float = Field(default=0.5, ge=0)
    """First backoff; doubles per retry, with full jitter, unless retry-after says more."""
    retry_backoff_max_s: float = Field(default=20.0, ge=0)
    """Cap of one backoff (retry-after beyond it ends retrying)."""
    max_connections: int = Field(default=4096, ge=1)
    """httpx connection pool size: bounds concurrent upstream calls per process."""
    max_pending_calls: int = Field(default=20000, ge=1)
    """Calls gRPC may queue while the server is busy accepting (bursts of new calls)."""
    http2: bool = False
    """Use HTTP/2 to the upstream (multiplexes many calls over few connections)."""

    max_request_bytes: int = Field(default=256 * MIB, ge=1)
    """Gateway cap of all uploaded bytes of one call (RESOURCE_EXHAUSTED past it)."""
    max_file_bytes: int = Field(default=50 * MIB, ge=1)
    """Cap per uploaded file when the model is unknown (known models use OpenAI's caps)."""
    spool_threshold_bytes: int = Field(default=1 * MIB, ge=0)
    """Uploads larger than this go to a temporary file, so memory per call is bounded."""
    max_send_message_bytes: int = Field(default=4 * MIB, ge=4 * MIB)
    """Largest unary result; bigger ones are RESOURCE_EXHAUSTED naming the stream RPC.
    The default is gRPC's default receive limit, so that a caller who kept it gets
    that helpful message rather than its library's generic "larger than max"; raise
    both together for callers that raised their own limit."""
    max_receive_message_bytes: int = Field(default=4 * MIB + 64 * 1024, ge=1 * MIB)
    """Largest request message (an upload chunk is at most 1 MiB plus framing)."""
    receive_window_bytes: int = Field(default=256 * 1024, ge=0)
    """HTTP/2 receive window of each call: how far an upload may run ahead of the
    gateway's reading, so it bounds the memory an upload holds in gRPC's buffers.
    An upload's throughput is at most this window per round trip: raise it for
    callers on high-latency links. 0 lets gRPC grow windows by BDP probing, which
    held 2-5 MiB per large upload on loopback (see the README's performance notes)."""
    result_chunk_bytes: int = Field(default=1 * MIB, ge=1024, le=1 * MIB)
    """Slice size of images on the streaming RPCs (the contract promises <= 1 MiB)."""

    drain_notice_s: float = Field(default=0.0, ge=0)
    """On SIGTERM: how long health reports NOT_SERVING while calls are still accepted,
    so load balancers stop routing here before the server refuses new calls."""
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    """After the notice: new calls are refused, in-flight calls get this long to finish."""
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    """The event loop of serve and its workers: ``auto`` runs on uvloop when it is
    installed (less CPU per call), else on asyncio's; ``uvloop`` requires it."""
    malloc_mmap_threshold_bytes: int = Field(default=2 * MIB, ge=0, le=32 * MIB)
    """glibc's malloc serves allocations from this size up from their own mappings,
    returned to the OS when freed (:mod:`imagegate_server.allocator`); 0 keeps
    glibc's dynamic threshold."""
    log_level: str = "INFO"
    """Python logging level name."""

    auth: Literal["auto", "none"] = "auto"
    """Caller authentication. ``auto``: with a clients file (or a client CA) every call
    must authenticate, by bearer token or client-certificate identity; without one,
    calls are anonymous, which ``serve`` allows only in emulator mode or on a
    loopback bind. ``none``: anonymous callers on purpose, even with a real key on a
    public bind (for a gateway behind an authenticating proxy)."""
    clients_file: Path | None = None
    """The clients file (TOML or YAML, by extension): tokens, certificate identities
    and per-client policy; see docs/clients.example.toml. Re-read when it changes."""
    clients_reload_s: float = Field(default=2.0, gt=0)
    """How often the clients file is checked for changes (a ``stat``, no read)."""

    tls_cert_file: Path | None = None
    """Server certificate chain (PEM); with ``tls_key_file``, the gateway serves TLS."""
    tls_key_file: Path | None = None
    """Private key (PEM, unencrypted) of ``tls_cert_file``; set both or neither."""
    tls_client_ca_file: Path | None = None
    """CA bundle (PEM) for client certificates: when set, every connection must
    present a certificate it signed (mTLS), and its identity can name a client."""
    tls_reload_s: float = Field(default=5.0, ge=0)
    """How often, at most, a new TLS handshake checks the certificate files for
    changes (rotation without restart); 0 checks on every handshake."""

    gateway_images_per_minute: int | None = Field(default=None, ge=1)
    """One images-per-minute ceiling for the whole gateway (every client together;
    with Redis, every replica together), so the fleet sheds load itself before
    OpenAI's organisation limit answers 429. Unset: no ceiling."""

    data_dir: Path = Path("data")
    """Where the gateway keeps its local state: the limits database
    (``imagegate.sqlite3``, with its ``-wal`` and ``-shm`` files) today. Relative to
    the working directory; created (mode 0700) if missing. Every worker of one
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

    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] | None = None
    """``serve --workers``: run this many gateway processes on one port under a
    supervisor (``auto``: one per CPU this process may run on). Unset: one process,
    no supervisor."""
    reuse_port: bool = False
    """Let several processes listen on the gRPC (and health) port (SO_REUSEPORT; the
    supervisor sets it for its workers). Off, a second server on a busy port fails
    to start instead of silently sharing its traffic."""
    health_port: int | None = Field(default=None, ge=0, le=65535)
    """A second, always plaintext gRPC port on ``host`` serving only grpc.health.v1
    (services ``""``, ``imagegate.v1.ImagesService``, ``readiness``, ``liveness``),
    for kubelet probes when the main port requires TLS or client certificates.
    Unset: no health port (health is still served on the main port)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the Prometheus endpoint (``GET /metrics``, text format). Unset: no
    endpoint. With workers the supervisor serves it, summed over all workers."""
    metrics_host: str | None = None
    """Address the metrics endpoint binds; unset: the gateway's ``host``."""
    metrics_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "PROMETHEUS_MULTIPROC_DIR", "IMAGEGATE_METRICS_MULTIPROC_DIR"
        ),
    )
    """With workers: the directory (prometheus-client's ``PROMETHEUS_MULTIPROC_DIR``)
    where each worker writes its metric files and the supervisor sums them; its
    ``*.db`` files are removed at start. Unset: a private temporary directory. Put it
    on a memory file system (an ``emptyDir`` with ``medium: Memory``)."""

    emulator_cache_renders: bool = False
    """Emulator mode: stamp identities into cached renders (for load tests, where
    rendering must not be the bottleneck); off, images show their prompt."""
    emulator_real_sizes: bool = False
    """Emulator mode: photographic-like PNG/JPEG/WebP images as large, encoded, as
    OpenAI's (megabytes; for benchmarks of transfer and decoding costs). Renders take
    ~0.1-1 s each: combine with ``emulator_cache_renders`` for load tests."""

    @field_validator("extra_parameters", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # Accept "a,b" as well as a JSON list.
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(
                    "expected a JSON list of names, or names separated by commas"
                ) from None
        return frozenset(item.strip() for item in value.split(",") if item.strip())

    @field_validator("redis_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not contain '{' or '}' (keys carry per-client hash tags)")
        return value

    def refuses_retired_models(self, *, emulator: bool) -> bool:
        """Whether calls for retired models are answered locally (see the field)."""
        if self.refuse_retired_models != "auto":
            return self.refuse_retired_models == "on"
        return not emulator and urlsplit(self.openai_base_url).hostname == OPENAI_API_HOST

    def api_key(self) -> SecretStr | None:
        """The configured key (variable first, then the key file), or None for none.

        Raises :class:`StartupError` for a key source that is set but gives no key.
        """
        if self.openai_api_key is not None:
            key = self.openai_api_key.get_secret_value().strip()
            if not key:
                raise StartupError(
                    "IMAGEGATE_OPENAI_API_KEY (or imagegate_openai_api_key in the "
                    "secrets directory or .env) is set but empty; set the key or unset it"
                )
            return SecretStr(key)
        if self.openai_api_key_file is not None:
            path = self.openai_api_key_file
            try:
                key = path.read_text().strip()
            except (OSError, UnicodeDecodeError):
                raise StartupError(
                    f"IMAGEGATE_OPENAI_API_KEY_FILE: cannot read the key file {str(path)[:200]!r}"
                ) from None
            if not key:
                raise StartupError(
                    f"IMAGEGATE_OPENAI_API_KEY_FILE: the key file {str(path)[:200]!r} is empty"
                )
            return SecretStr(key)
        return None
