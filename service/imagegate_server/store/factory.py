"""The store as the settings configure it, started: its backend, the local link
port, the sweeper. One call for the gateway (and one ``aclose``)::

    running = await open_store(settings, redis=client, observer=metrics.store,
                               tracer=tracing.store if tracing else None)
    running.store.store_image(...)
    await running.aclose()
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from obstore.store import S3Store

from imagegate_server.errors import StartupError
from imagegate_server.localdb import LocalDatabase
from imagegate_server.redis_connection import RedisConnection
from imagegate_server.settings import Settings
from imagegate_server.store.backend import Backend
from imagegate_server.store.ledger import MemoryLedger, StorageLedger
from imagegate_server.store.ledger_local import LocalLedger
from imagegate_server.store.ledger_redis import RedisLedger
from imagegate_server.store.link_server import LinkServer
from imagegate_server.store.local import LocalBackend
from imagegate_server.store.observe import StoreObserver, StoreTracer
from imagegate_server.store.results import Clock, ResultStore, StoreLimits, utc_now
from imagegate_server.store.retention import InProcessLock, RedisLock, Sweeper, SweepLock
from imagegate_server.store.s3 import S3Backend
from imagegate_server.store.signing import LinkSigner, signing_key

log = logging.getLogger(__name__)

_WILDCARDS = {"0.0.0.0", "::", ""}  # noqa: S104 (recognised, not bound)


@dataclass
class RunningStore:
    store: ResultStore
    link_server: LinkServer | None
    sweeper: Sweeper | None

    @property
    def link_port(self) -> int | None:
        """The local store's link port (None with S3)."""
        return self.link_server.port if self.link_server is not None else None

    async def aclose(self) -> None:
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.link_server is not None:
            await self.link_server.stop()
        await self.store.aclose()


async def open_store(
    settings: Settings,
    *,
    redis: RedisConnection | None = None,
    ledger: StorageLedger | None = None,
    observer: StoreObserver | None = None,
    tracer: StoreTracer | None = None,
    sweep: bool | None = None,
    clock: Clock | None = None,
) -> RunningStore:
    """The configured store, serving links (local) and sweeping (unless ``sweep`` or
    ``store_sweep`` say not to). ``redis``: the gateway's Redis connection, whose
    replicas share the sweep; None: this process sweeps on its own. ``clock``: the
    store's notion of now (expiry, sweeping, links), the system's by default.

    Raises StartupError for a configuration it cannot serve (one line).
    """
    limits = StoreLimits(
        write_timeout=datetime.timedelta(seconds=settings.store_write_timeout_s),
        max_concurrent_writes=settings.store_max_concurrent_writes,
        link_lifetime=datetime.timedelta(seconds=settings.store_link_lifetime_s),
    )
    link_server: LinkServer | None = None
    backend: Backend
    if settings.store_backend == "s3":
        backend = s3_backend(settings)
    else:
        local, link_server = await _local(settings, observer)
        backend = local
    store = ResultStore(
        backend, limits, ledger=ledger, observer=observer, tracer=tracer, clock=clock or utc_now
    )
    sweeper: Sweeper | None = None
    if settings.store_sweep if sweep is None else sweep:
        lock: SweepLock = (
            RedisLock(redis, settings.redis_prefix) if redis is not None else InProcessLock()
        )
        sweeper = Sweeper(
            store,
            lock,
            interval_s=settings.store_sweep_interval_s,
            batch=settings.store_sweep_batch,
            observer=observer,
        )
        sweeper.start()
    log.info("result store", extra={"backend": backend.name})
    return RunningStore(store, link_server, sweeper)


def ledger_for(
    database: LocalDatabase | None, redis: RedisConnection | None, prefix: str
) -> StorageLedger:
    """The ledger kept where the limiter keeps its state, shared as widely: Redis (every
    replica), else the local database (every worker of one ``serve``, across
    restarts), else this process's memory (``IMAGEGATE_LIMITS_STORE=memory``)."""
    if redis is not None:
        return RedisLedger(redis, prefix)
    if database is not None:
        return LocalLedger(database)
    return MemoryLedger()


def s3_backend(settings: Settings) -> S3Backend:
    """The S3 backend of ``settings``; credentials the settings leave unset come from
    the standard ``AWS_*`` variables and the AWS credential chain."""
    if not settings.store_s3_bucket:
        raise StartupError("IMAGEGATE_STORE_BACKEND=s3 needs IMAGEGATE_STORE_S3_BUCKET")
    config: dict[str, Any] = {
        "virtual_hosted_style_request": settings.store_s3_virtual_hosted_style
    }
    if settings.store_s3_endpoint:
        config["endpoint"] = settings.store_s3_endpoint
    if settings.store_s3_region:
        config["region"] = settings.store_s3_region
    for name in ("access_key_id", "secret_access_key", "session_token"):
        secret = getattr(settings, f"store_s3_{name}")
        if secret is not None:
            config[name] = secret.get_secret_value()
    # The endpoint may also come from the environment, as the AWS SDKs read it.
    endpoint = settings.store_s3_endpoint or os.environ.get("AWS_ENDPOINT_URL", "")
    client: dict[str, Any] = {
        "connect_timeout": datetime.timedelta(seconds=settings.store_connect_timeout_s),
        "timeout": datetime.timedelta(seconds=settings.store_write_timeout_s),
    }
    if endpoint.startswith("http://"):
        client["allow_http"] = True
    timeout = client["timeout"]
    try:
        store = S3Store(
            settings.store_s3_bucket,
            config=config,  # type: ignore[arg-type]
            client_options=client,  # type: ignore[arg-type]
            retry_config={
                "max_retries": 2,
                "retry_timeout": timeout,
                "backoff": {
                    "init_backoff": datetime.timedelta(milliseconds=100),
                    "max_backoff": datetime.timedelta(seconds=2),
                    "base": 2,
                },
            },
        )
    except Exception:  # obstore's configuration errors may quote values: say what, not them
        raise StartupError(
            "IMAGEGATE_STORE_S3_*: the S3 configuration is not valid (check the endpoint "
            "URL, region and bucket name)"
        ) from None
    return S3Backend(
        store,
        prefix=settings.store_s3_prefix,
        part_bytes=settings.store_part_bytes,
        part_concurrency=settings.store_part_concurrency,
    )


async def _local(
    settings: Settings, observer: StoreObserver | None
) -> tuple[LocalBackend, LinkServer]:
    root = settings.store_directory()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        raise StartupError(f"IMAGEGATE_STORE_DIR: cannot create {str(root)[:200]!r}") from None
    configured = settings.store_signing_key
    key = signing_key(
        configured.get_secret_value() if configured is not None else None, settings.data_dir
    )
    signer = LinkSigner(key)
    backend = LocalBackend(
        root, signer, stale_after=2 * datetime.timedelta(seconds=settings.store_write_timeout_s)
    )
    server = LinkServer(backend, signer, observer=observer)
    host = link_host(settings)
    port = await server.start(host, settings.store_http_port, reuse_port=settings.reuse_port)
    backend.base_url = settings.store_public_url or _base_url(host, port)
    return backend, server


def link_host(settings: Settings) -> str:
    """The address the link port binds: ``store_http_host``, else the gateway's host
    (an IPv6 address without the brackets gRPC's address syntax puts around it)."""
    host = settings.store_http_host or settings.host
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _base_url(host: str, port: int) -> str:
    if host in _WILDCARDS:
        # A wildcard is no address to give out: the machine's name is the best guess.
        host = socket.getfqdn()
        log.warning(
            "store links name this machine by its host name; set "
            "IMAGEGATE_STORE_PUBLIC_URL to the address callers reach",
            extra={"host": host},
        )
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
