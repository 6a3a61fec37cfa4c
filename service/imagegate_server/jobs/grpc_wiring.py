"""The jobs stage put together for one gateway process: its store (local database or
Redis), its runners, its edge (ImageJobsService, google.longrunning.Operations)."""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from imagegate_server.errors import StartupError
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.guard import Guard
from imagegate_server.gateway.edge.status import status_bytes
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.tenancy import Tenancy
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.jobs.execution import Execution
from imagegate_server.jobs.grpc_submit import SERVICE as SUBMIT_SERVICE
from imagegate_server.jobs.grpc_submit import SubmitServicer
from imagegate_server.jobs.local_store import LocalJobStore
from imagegate_server.jobs.observers import JobTracer
from imagegate_server.jobs.operation_view import OperationView
from imagegate_server.jobs.operations_service import SERVICE as OPERATIONS_SERVICE
from imagegate_server.jobs.operations_service import OperationsServicer
from imagegate_server.jobs.redis_store import BLOCK_MS, RedisJobStore
from imagegate_server.jobs.runner import Runner, RunnerLimits
from imagegate_server.jobs.service import Jobs
from imagegate_server.jobs.store import JobStore
from imagegate_server.limits import Ticket
from imagegate_server.localdb import LocalDatabase
from imagegate_server.metrics import Metrics
from imagegate_server.redis_connection import RedisConnection, connect, options_from
from imagegate_server.routing import Router
from imagegate_server.settings import Settings
from imagegate_server.store import ResultStore
from imagegate_server.upstream import ImagesRequest, Reply

SERVICE_NAMES = (SUBMIT_SERVICE.full_name, OPERATIONS_SERVICE.full_name)


class RoutedSender:
    """:class:`~.execution.Sender` through the gateway's router, within the upstreams
    the job's client may use now."""

    def __init__(self, router: Router, callers: Authenticator) -> None:
        self._router = router
        self._callers = callers

    def send(
        self,
        request: ImagesRequest,
        deadline: float,
        client: str,
        attempting: Callable[[str], None],
    ) -> AbstractAsyncContextManager[Reply]:
        allowed = self._callers.named(client).policy.upstreams
        return self._router.send(request, deadline, allowed, attempting)


class TenancyAdmissions:
    """:class:`~.admissions.JobAdmissions` through the edge's tenancy, under each client's
    current policy."""

    def __init__(self, tenancy: Tenancy, callers: Authenticator) -> None:
        self._tenancy = tenancy
        self._callers = callers

    async def start(self, client: str, n: int) -> Ticket:
        return await self._tenancy.start(self._callers.named(client), n)

    async def settle(self, ticket: Ticket, amount_micros: int, upstream: str | None = None) -> None:
        await self._tenancy.settle_ticket(ticket, amount_micros, upstream)


def runner_name() -> str:
    """This process among every replica's: host, pid and a random part (a restarted
    process on the same host and pid is another runner)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def jobs_redis(settings: Settings) -> tuple[RedisConnection, RedisConnection] | None:
    """Two connections to ``IMAGEGATE_REDIS_URL`` for the jobs (None without Redis): the
    gateway's (scripts and reads, the limiter's timeouts), and one whose timeout
    outlasts a blocking read (a turn, an event), which waits by design."""
    if settings.redis_url is None:
        return None
    blocking = replace(
        options_from(settings), timeout_s=BLOCK_MS / 1000 + max(2.0, settings.redis_timeout_s),
        max_connections=4,
    )  # fmt: skip
    try:
        url = settings.redis_url.get_secret_value()
        return connect(settings), RedisConnection.from_url(url, blocking)
    except ValueError:
        raise StartupError("IMAGEGATE_REDIS_URL is not a valid Redis URL") from None


def job_store(
    settings: Settings,
    database: LocalDatabase | None,
    redis: tuple[RedisConnection, RedisConnection] | None,
) -> JobStore:
    if redis is not None:
        client, blocking = redis
        return RedisJobStore(client, blocking, prefix=settings.redis_prefix)
    if database is None:
        raise StartupError("jobs need the local database or IMAGEGATE_REDIS_URL")
    return LocalJobStore(database)


def build_jobs(
    *,
    settings: Settings,
    store: JobStore,
    router: Router,
    requests: RequestBuilder,
    pricer: Pricer,
    results: ResultStore,
    tenancy: Tenancy,
    callers: Authenticator,
    metrics: Metrics,
    tracer: JobTracer | None = None,
) -> Jobs:
    execution = Execution(
        RoutedSender(router, callers), requests, pricer, results,
        datetime.timedelta(seconds=settings.jobs_retention_s),
        settings.result_chunk_bytes,
    )  # fmt: skip
    limits = RunnerLimits(
        max_running=settings.jobs_max_running,
        lease_s=settings.jobs_lease_s,
        queue_timeout_s=settings.jobs_queue_timeout_s,
        retention_s=settings.jobs_retention_s,
        upstream_timeout_s=settings.upstream_timeout_s,
    )
    runner = Runner(
        store, execution, TenancyAdmissions(tenancy, callers), status_bytes, runner_name(),
        limits, metrics.jobs, tracer,
    )  # fmt: skip
    return Jobs(store, runner, metrics.jobs)


def add_jobs_services(
    server: Any,
    jobs: Jobs,
    *,
    settings: Settings,
    results: ResultStore,
    callers: Authenticator,
    tenancy: Tenancy,
    storage: Storage,
    requests: RequestBuilder,
    metrics: Metrics,
    guard: Guard,
) -> None:
    view = OperationView(results, settings.max_send_message_bytes, jobs.runner.execution.recent)
    SubmitServicer(
        jobs, view, callers=callers, tenancy=tenancy, storage=storage, requests=requests,
        results=results, settings=settings, metrics=metrics, guard=guard,
    ).register(server)  # fmt: skip
    OperationsServicer(
        jobs, view, callers=callers, settings=settings, metrics=metrics, guard=guard
    ).register(server)
