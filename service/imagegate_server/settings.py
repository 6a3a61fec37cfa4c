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


def secrets_directory() -> Path:
    """The secrets directory (``IMAGEGATE_SECRETS_DIR``, default ``/run/secrets``)."""
    return Path(os.environ.get("IMAGEGATE_SECRETS_DIR", "/run/secrets"))


def _secrets_dir() -> str | None:
    # Only an existing directory: pydantic-settings warns about a missing one.
    path = secrets_directory()
    return str(path) if path.is_dir() else None


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

    upstreams_file: Path | None = None
    """The upstreams file (TOML or YAML, by extension): several upstreams (OpenAI
    organisations and projects, Azure OpenAI deployments, compatible servers), each
    with its key by reference, its models, weight, priority and ceilings; see
    docs/upstreams.example.toml. Re-read when it, or a key or price file it names,
    changes. Set, it replaces ``openai_api_key``, ``openai_api_key_file``,
    ``openai_base_url``, ``openai_organization`` and ``openai_project`` (unset, they
    are the one upstream, named ``default``)."""
    upstreams_reload_s: float = Field(default=2.0, gt=0)
    """How often the upstreams file (and the files it names) is checked for changes."""
    upstream_circuit_failures: int = Field(default=5, ge=1, le=1000)
    """An upstream of the upstreams file whose calls fail this many times in a row
    (connect errors, 429, 401, 5xx, timeouts, broken answers), within
    ``upstream_circuit_window_s``, gets no calls for ``upstream_circuit_open_s``."""
    upstream_circuit_window_s: float = Field(default=60.0, gt=0)
    """The failures that open a circuit must fall within this many seconds."""
    upstream_circuit_open_s: float = Field(default=30.0, gt=0)
    """How long an open circuit keeps calls off its upstream; then one call probes it
    (half-open): success closes the circuit, failure opens it again."""

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
    """httpx connection pool size: bounds concurrent upstream calls per process (every
    upstream of the upstreams file together: they share the pool)."""
    max_pending_calls: int = Field(default=20000, ge=1)
    """Calls gRPC may queue while the server is busy accepting (bursts of new calls)."""
    http2: bool = False
    """Use HTTP/2 to the upstream (multiplexes many calls over few connections)."""
    upstream_unknown_model_answer_bytes: int = Field(default=128 * MIB, ge=1 * MIB)
    """The largest answer read from the upstream for a model the model table does not
    know (for known models, the largest answer the table allows for the request:
    ``n`` images of its size and format at 4 bytes per pixel, in base64, plus JSON).
    Larger answers are refused (UNAVAILABLE, ``UPSTREAM_ANSWER_TOO_LARGE``) and
    charged their estimate; this is also the memory one such call may take."""
    upstream_error_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * MIB)
    """How much of an upstream error answer's body is read (OpenAI's error JSON is a
    few hundred bytes); the rest is not read and its connection is closed."""

    max_caller_connections: int = Field(default=16384, ge=1, le=1 << 30)
    """Connections from callers one process holds at once, every address together
    (with workers: each worker). Past it gRPC closes new connections as they arrive.
    Whatever this says, callers get at most half the open-file limit (raised to its
    hard limit at start): the other half stays for the upstream pool, Redis, upload
    spool files and the health port."""
    max_connections_per_address: int = Field(default=256, ge=1)
    """Connections one caller address may hold in one process. Past it, within a
    second, its newest connections without a call in flight are closed. Callers
    behind one NAT or proxy share its address: raise it for them."""
    max_calls_per_connection: int = Field(default=1000, ge=1, le=1 << 30)
    """Concurrent calls (HTTP/2 streams) on one connection. A gRPC client queues its
    calls past it; a peer that does not gets them refused (REFUSED_STREAM)."""
    connection_first_call_timeout_s: float = Field(default=10.0, gt=0, le=86400)
    """A connection that has started no call this long after it opened is closed
    (this also bounds its TLS handshake). A gRPC client whose connection was closed
    so reconnects by itself at its next call."""
    connection_idle_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    """A connection with no call in flight for this long is closed (with an HTTP/2
    GOAWAY; the client reconnects at its next call)."""

    max_request_bytes: int = Field(default=256 * MIB, ge=1)
    """Gateway cap of all uploaded bytes of one call (RESOURCE_EXHAUSTED past it)."""
    max_file_bytes: int = Field(default=50 * MIB, ge=1)
    """Cap per uploaded file when the model is unknown (known models use OpenAI's caps)."""
    spool_threshold_bytes: int = Field(default=1 * MIB, ge=0)
    """Upload bytes one call holds in memory, all its files together; past it, its
    files go to unlinked temporary files in ``spool_dir``."""
    spool_dir: Path | None = None
    """Where uploads past ``spool_threshold_bytes`` wait for the upstream call, in files
    unlinked as they are made (their space is freed when the call ends, however it
    ends, or the process dies). Created (mode 0700) at start, where leftovers of a
    crash are removed; shared safely by the workers of one ``serve``. Unset:
    ``imagegate-spool-<uid>`` in the system's temporary directory (``TMPDIR``, else
    ``/tmp``): writable with a read-only root file system when ``/tmp`` is a volume."""
    first_message_timeout_s: float = Field(default=5.0, gt=0)
    """An upload (edit, variation) must send its first message, the parameters,
    within this many seconds of its start, else it ends with DEADLINE_EXCEEDED
    (ErrorInfo ``FIRST_MESSAGE_TIMEOUT``). It holds its caller's concurrency slot
    meanwhile, so this bounds how long a caller can hold slots with nothing."""
    upload_idle_timeout_s: float = Field(default=30.0, gt=0)
    """An upload that sends no message for this many seconds mid-upload ends with
    DEADLINE_EXCEEDED (ErrorInfo ``UPLOAD_STALLED``); the call's deadline bounds the
    whole upload as well."""
    rejected_upload_read_s: float = Field(default=5.0, ge=0)
    """When the gateway refuses an upload after its go-ahead (a file of the wrong
    type, say), it first reads and discards what the caller still sends of the bytes
    it declared, for at most this many seconds, so that the caller has finished
    writing when the status arrives (gRPC's asyncio Python client loses a status
    that arrives during its writes: grpc/grpc#36066). 0: answer at once."""
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

    store_backend: Literal["local", "s3"] = "local"
    """Where stored results go: ``local``, a directory served by the gateway's own
    link port (one replica, or replicas sharing the directory); ``s3``, any
    S3-compatible service (AWS S3, GCS in S3 mode, Ceph, SeaweedFS, MinIO...)."""
    store_dir: Path | None = None
    """The local store's directory. Unset: ``<data_dir>/results``."""
    store_retention_s: float = Field(default=86400.0, ge=60, le=365 * 86400)
    """How long a stored result is kept unless the call's client says otherwise
    (``result_retention`` in the clients file); capped at ``store_max_retention_s``."""
    store_max_retention_s: float = Field(default=7 * 86400.0, ge=60, le=365 * 86400)
    """The longest any stored result is kept: a client's ``result_retention`` above
    it is cut to it, so the operator bounds what the store holds whatever the
    clients file says."""
    store_link_lifetime_s: float = Field(default=3600.0, ge=1, le=365 * 86400)
    """Lifetime of a link to a stored result; capped at the result's remaining
    retention and at the backend's maximum (7 days for S3's presigned URLs)."""
    store_http_host: str | None = None
    """Address the local store's link port binds. Unset: the gateway's ``host``."""
    store_http_port: int = Field(default=50053, ge=0, le=65535)
    """Port on which the gateway serves local-store links (and nothing else); 0 picks
    a free one (with workers: one for all of them). Unused with
    ``store_backend=s3`` (links go to the bucket). Not 50052: the Kubernetes
    manifests give that to the health port."""
    store_public_url: str | None = None
    """Base URL of local-store links as callers reach them (the gateway may sit
    behind a proxy), e.g. ``https://images.example.com``. Unset:
    ``http://<store_http_host>:<port>``."""
    store_signing_key: SecretStr | None = None
    """HMAC-SHA256 key of local-store links (also from ``imagegate_store_signing_key``
    in the secrets directory). Unset: a random key generated once into
    ``<data_dir>/store-signing-key`` (mode 0600) and read from there by every worker
    and restart, so links stay valid as long as the directory does."""
    store_s3_bucket: str | None = None
    """The bucket of ``store_backend=s3`` (required there)."""
    store_s3_prefix: str = "imagegate/results/"
    """Key prefix of every stored result in the bucket (a lifecycle rule filters on it)."""
    store_s3_endpoint: str | None = None
    """S3 endpoint URL for non-AWS services (``http://`` is allowed); unset: AWS S3
    (``AWS_ENDPOINT_URL`` is also read)."""
    store_s3_region: str | None = None
    """Region; unset: ``AWS_REGION``/``AWS_DEFAULT_REGION``, else ``us-east-1``."""
    store_s3_access_key_id: SecretStr | None = None
    """Access key; unset: ``AWS_ACCESS_KEY_ID``, a web identity (EKS), the container
    or instance credentials, in the AWS SDKs' order."""
    store_s3_secret_access_key: SecretStr | None = None
    """Secret of ``store_s3_access_key_id`` (a secret: the secrets directory's
    ``imagegate_store_s3_secret_access_key`` serves it)."""
    store_s3_session_token: SecretStr | None = None
    """Session token of temporary credentials, if any."""
    store_s3_virtual_hosted_style: bool = False
    """Address the bucket as ``<bucket>.<endpoint>`` instead of ``<endpoint>/<bucket>``."""
    store_write_timeout_s: float = Field(default=120.0, gt=0)
    """Upper bound of storing one result, from its first byte to its last; past it the
    write is abandoned (nothing becomes visible) and the call fails UNAVAILABLE."""
    store_connect_timeout_s: float = Field(default=5.0, gt=0)
    """Upper bound of connecting to the S3 service."""
    store_max_concurrent_writes: int = Field(default=64, ge=1)
    """Results being stored at once per process; more wait (within the write timeout)."""
    store_part_bytes: int = Field(default=8 * MIB, ge=5 * MIB, le=512 * MIB)
    """S3 multipart part size: objects larger go up in parts, smaller in one request.
    With ``store_part_concurrency``, bounds the memory one write holds."""
    store_part_concurrency: int = Field(default=2, ge=1, le=16)
    """Parts of one object uploaded at once: a write holds at most
    ``store_part_bytes * (store_part_concurrency + 1)``."""
    store_sweep: bool = True
    """Delete expired results with the gateway's sweeper (with Redis, one replica at a
    time). Turn off only where a bucket lifecycle rule deletes them instead."""
    store_sweep_interval_s: float = Field(default=60.0, gt=0)
    """Time between two sweeps (a full batch sweeps again at once)."""
    store_sweep_batch: int = Field(default=1000, ge=1, le=100_000)
    """Most results one sweep deletes (a pass's work is bounded)."""

    jobs_max_running: int = Field(default=64, ge=1, le=100_000)
    """Image jobs one gateway process runs at once (with workers: each worker). A
    replica takes a queued job only while it has a free runner, so the rest wait in
    the queue (where any other replica with a free runner may take them)."""
    jobs_lease_s: float = Field(default=30.0, ge=1, le=3600)
    """How long a job stays with the process running it without that process saying
    it still runs it (it renews every third of this). A process that dies (killed,
    out of memory, its node gone) leaves its jobs for this long at most: then a job
    that had not been sent upstream is queued again, and one that had is failed
    ABORTED and charged its estimate (OpenAI billed it)."""
    jobs_retention_s: float = Field(default=86400.0, ge=1, le=365 * 86400)
    """How long a finished job (its operation, its result, its stored images and
    uploads) is kept, and so how long a request_id keeps answering with the same
    result. Then GetOperation is NOT_FOUND and the request id may be used again."""
    jobs_queue_timeout_s: float = Field(default=3600.0, ge=1, le=7 * 86400)
    """The longest a job waits in its queue; past it the job fails DEADLINE_EXCEEDED
    (``JOB_TIMED_OUT``) and its budget reservation is freed. Reservations of queued
    jobs are held this long plus ``upstream_timeout_s`` and ``limit_hold_margin_s``."""
    jobs_wait_max_s: float = Field(default=300.0, gt=0, le=3600)
    """The longest one WaitOperation call blocks (the shorter of this, its
    ``timeout`` and its deadline wins; then it answers the operation as it is)."""
    jobs_max_page_size: int = Field(default=100, ge=1, le=1000)
    """Most operations one ListOperations page holds (a larger page_size is cut to it)."""

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

    @field_validator("store_s3_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        # "a/b" and "/a/b/" both mean keys "a/b/<...>"; "" means the bucket's root.
        value = value.strip("/")
        return f"{value}/" if value else ""

    def store_directory(self) -> Path:
        """The local store's directory (``store_dir``, else ``<data_dir>/results``)."""
        return self.store_dir if self.store_dir is not None else self.data_dir / "results"

    def refuses_retired_models(self, *, emulator: bool) -> bool:
        """Whether calls for retired models are answered locally (see the field)."""
        if self.refuse_retired_models != "auto":
            return self.refuse_retired_models == "on"
        return not emulator and urlsplit(self.openai_base_url).hostname == OPENAI_API_HOST

    def emulated(self) -> bool:
        """Whether the embedded emulator is the upstream: no key and no upstreams file.

        Raises :class:`StartupError` for a key source that is set but gives no key."""
        return self.upstreams_file is None and self.api_key() is None

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
