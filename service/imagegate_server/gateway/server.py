"""A running gateway: gRPC server, health, reflection, the router over its upstreams
(the upstreams file's, or the one of ``IMAGEGATE_OPENAI_*``), the result store and,
when neither a key nor an upstreams file is configured, the embedded emulator as the
upstream.

Operations around it: metrics (one :class:`Metrics` per process, exposed on their
own port unless a worker supervisor exposes them), traces when the ``OTEL_*``
variables ask for them (each worker process exports its own), an optional
plaintext health port for kubelet probes, and SO_REUSEPORT only when several
workers share a port. The result store is opened at start and closed after the
last call drained: its ledger lives beside the limiter's state (Redis, the local
database or memory), and with the local backend each worker serves the link port
too (SO_REUSEPORT, like the gRPC port), so any of them answers any link. Which
upstreams it calls is chosen in :mod:`.upstream_set`, and judged at start in
:mod:`.startup_checks`; what the server serves is assembled in :mod:`.services`;
how its servers listen is :mod:`.listening`.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2

from imagegate_server.clients import ClientsFile, startup_auth_problem
from imagegate_server.emulator import Emulator
from imagegate_server.errors import StartupError
from imagegate_server.gateway.connections import (
    ConnectionGuards,
    caller_limits,
    health_limits,
    raise_open_files_limit,
)
from imagegate_server.gateway.edge.guard import log_unsent_answers_as_info
from imagegate_server.gateway.listening import bind, health_server, new_server, server_options
from imagegate_server.gateway.services import (
    DRAINED_SERVICES,
    HEALTH_SERVICES,
    add_services,
    auth_required,
)
from imagegate_server.gateway.startup_checks import probe_upstreams, refuses_retired
from imagegate_server.gateway.upstream_set import SharedEmulator, upstream_set
from imagegate_server.jobs.grpc_wiring import job_store, jobs_redis
from imagegate_server.jobs.local_schema import SCHEMA as JOBS_SCHEMA
from imagegate_server.jobs.service import Jobs
from imagegate_server.limits import SCHEMA as LIMITS_SCHEMA
from imagegate_server.limits import Limiter, RedisLimiter, build_limiter, uses_local_database
from imagegate_server.localdb import LocalDatabase
from imagegate_server.metrics import Metrics, MetricsEndpoint
from imagegate_server.pricing import load_price_table
from imagegate_server.redis_connection import RedisConnection
from imagegate_server.routing import BreakerPolicy, Router, UpstreamsFile
from imagegate_server.settings import Settings
from imagegate_server.store import SCHEMA as STORE_SCHEMA
from imagegate_server.store import RunningStore, ledger_for, open_store
from imagegate_server.tls import ServerCertificates
from imagegate_server.tracing import tracing_from_environment
from imagegate_server.upstream import Pool

if TYPE_CHECKING:
    from imagegate_server.tracing.provider import Tracing

log = logging.getLogger(__name__)


class Gateway:
    """Start with ``await gateway.start()`` (or ``async with``); ``port`` is then bound."""

    def __init__(
        self,
        settings: Settings,
        *,
        shared_emulator: SharedEmulator | None = None,
        tracing: Tracing | None = None,
        sweeps: bool = True,
    ) -> None:
        """``tracing``: spans go there (the caller stops it); None: traces as the
        ``OTEL_*`` variables configure them, if at all (stopped with the gateway).
        ``sweeps``: this process may sweep expired results (the workers of one
        ``serve`` without Redis leave it to one of them)."""
        self.settings = settings
        self.port = 0
        self.health_port = 0
        self.metrics_port = 0
        self.emulator: Emulator | None = None
        self.metrics = Metrics()
        """Everything this process records; the edge records calls through it."""
        self._shared_emulator = shared_emulator
        self._tracing = tracing
        self._own_tracing: Tracing | None = None
        self._router: Router | None = None
        self._upstreams_file: UpstreamsFile | None = None
        self._clients: ClientsFile | None = None
        self._database: LocalDatabase | None = None
        self._limiter: Limiter | None = None
        self._store: RunningStore | None = None
        self._sweeps = sweeps
        self._redis: tuple[RedisConnection, RedisConnection] | None = None
        self.jobs: Jobs | None = None
        """The jobs stage (its runners run while the gateway serves)."""
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._probe: asyncio.Task[None] | None = None
        self._guards = ConnectionGuards(self.metrics)
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]

    async def start(self) -> int:
        """Raises :class:`StartupError` (after releasing whatever it had opened)."""
        try:
            return await self._start()
        except BaseException:
            await self.stop(0)
            raise

    async def _start(self) -> int:
        settings = self.settings
        key = settings.api_key()
        if settings.upstreams_file is not None:
            self._upstreams_file = UpstreamsFile(settings.upstreams_file, settings)
        real = key is not None or self._upstreams_file is not None
        problem = startup_auth_problem(settings, real_key=real)
        if problem is not None:
            raise StartupError(problem)
        emulated = not real  # our own emulator, or the supervisor's
        if self._tracing is None:
            self._tracing = self._own_tracing = tracing_from_environment()
        upstreams, self.emulator = await upstream_set(
            settings, key, self._upstreams_file, self._shared_emulator
        )
        certificates = ServerCertificates.from_settings(settings)
        self._clients = ClientsFile.from_settings(settings)
        if self._clients is not None:
            await self._clients.start()
        if settings.redis_url is None:
            # Limits (unless kept in memory), the store's ledger (likewise) and jobs:
            # shared by the workers, kept across restarts.
            self._database = await LocalDatabase.open(
                settings.data_dir, LIMITS_SCHEMA, STORE_SCHEMA, JOBS_SCHEMA
            )
        self._limiter = build_limiter(settings, self._database)
        self._redis = jobs_redis(settings)
        store = self._store = await self._open_store()
        prices = load_price_table(settings)
        self._router = Router(
            upstreams,
            self._limiter,
            prices,
            self.metrics,
            tracer=self._tracing.upstream if self._tracing is not None else None,
            breaker=BreakerPolicy(
                settings.upstream_circuit_failures,
                settings.upstream_circuit_window_s,
                settings.upstream_circuit_open_s,
            ),
            pool=Pool(settings.max_connections, http2=settings.http2),
        )
        if self._upstreams_file is not None:
            self._upstreams_file.on_change = self._router.apply
            await self._upstreams_file.start()
        log_unsent_answers_as_info()
        open_files = raise_open_files_limit()
        limits = caller_limits(settings, open_files)
        server, server_id = new_server(server_options(settings, limits))
        jobs = add_services(
            server,
            settings=settings,
            router=self._router,
            limiter=self._limiter,
            clients=self._clients,
            store=store.store,
            prices=prices,
            metrics=self.metrics,
            tracing=self._tracing,
            health_servicer=self._health,
            certificates=certificates,
            refuse_retired=refuses_retired(settings, emulated, upstreams),
            job_store=job_store(settings, self._database, self._redis),
        )
        self.jobs = jobs
        self._server = server
        self.port = bind(server, settings.host, settings.port, certificates)
        self._guards.watch("grpc", server_id, self.port, limits)
        if settings.health_port is not None:
            self._health_server, health_id = health_server(
                self._health, settings.reuse_port, health_limits(settings)
            )
            self.health_port = bind(self._health_server, settings.host, settings.health_port)
            self._guards.watch("health", health_id, self.health_port, health_limits(settings))
        if settings.metrics_port is not None:
            self._metrics_endpoint = MetricsEndpoint(self.metrics.registry)
            self.metrics_port = await self._metrics_endpoint.start(
                settings.metrics_host or settings.host, settings.metrics_port
            )
        await server.start()
        await jobs.start()
        if self._health_server is not None:
            await self._health_server.start()
        for service in HEALTH_SERVICES:
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._guards.start()
        self.metrics.server_started()
        self._probe = asyncio.create_task(
            probe_upstreams(upstreams, settings.connect_timeout_s, self.metrics)
        )
        extra: dict[str, object] = {
            "address": f"{settings.host}:{self.port}",
            "tls": certificates is not None,
            "authentication": "required" if auth_required(settings) else "optional",
            "limiter": self._limiter.backend,
            **({"database": str(self._database.path)} if self._database is not None else {}),
            "prices": prices.version_label,
            "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "open_files": open_files,
            "max_caller_connections": limits.max_connections,
        }
        if self.health_port:
            extra["health_address"] = f"{settings.host}:{self.health_port}"
        extra["result_store"] = store.store.backend_name
        if store.link_port:
            extra["store_link_port"] = store.link_port
        log.info("serving", extra=extra)
        return self.port

    async def _open_store(self) -> RunningStore:
        settings = self.settings
        limiter = self._limiter
        redis = limiter.connection if isinstance(limiter, RedisLimiter) else None
        return await open_store(
            settings,
            redis=redis,
            ledger=ledger_for(
                self._database if uses_local_database(settings) else None,
                redis,
                settings.redis_prefix,
            ),
            observer=self.metrics.store,
            tracer=self._tracing.store if self._tracing is not None else None,
            sweep=None if self._sweeps else False,
        )

    @property
    def store(self) -> RunningStore | None:
        """The result store, while the gateway runs."""
        return self._store

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: health NOT_SERVING, refuse new calls, let in-flight calls finish."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        # Not enter_graceful_shutdown(): that would fail liveness too, and a kubelet
        # would kill the process in the middle of finishing its calls.
        for service in DRAINED_SERVICES:
            await self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        await self._guards.stop()
        if self._server is not None and self.port and self.settings.drain_notice_s > 0:
            await asyncio.sleep(self.settings.drain_notice_s)
        if self._server is not None:
            if self.port:
                log.info("draining", extra={"grace_s": grace})
            await self._server.stop(grace)
            self._server = None
        if self.jobs is not None:
            # After the drain: jobs still running go back to their queue (unsent) or
            # fail ABORTED (sent), for a restart or another replica.
            await self.jobs.stop()
            self.jobs = None
        if self._health_server is not None:
            await self._health_server.stop(0)
            self._health_server = None
        if self._metrics_endpoint is not None:
            await self._metrics_endpoint.stop()
            self._metrics_endpoint = None
        if self._upstreams_file is not None:
            await self._upstreams_file.stop()
            self._upstreams_file = None
        if self._router is not None:
            await self._router.aclose()
            self._router = None
        if self._clients is not None:
            await self._clients.stop()
            self._clients = None
        if self._store is not None:  # before the limiter: it may share its Redis client
            await self._store.aclose()
            self._store = None
        if self._limiter is not None:
            await self._limiter.aclose()
            self._limiter = None
        if self._database is not None:
            await self._database.aclose()
            self._database = None
        if self.emulator is not None:
            await self.emulator.stop()
            self.emulator = None
        if self._own_tracing is not None:
            # Last: the drained calls' spans are exported before the process exits.
            await self._own_tracing.aclose()
            self._own_tracing = self._tracing = None

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop(0)
