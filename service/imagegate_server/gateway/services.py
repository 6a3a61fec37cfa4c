"""What the gateway's gRPC server serves: ImagesService, QuotaService, AdminService,
StoredImagesService, health and reflection, each assembled from the parts the
:class:`~.server.Gateway` started.

The names callers and probes address are here too: :data:`SERVICE_NAME` and the
health service names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from imagegate.v1 import images_service_pb2

from imagegate_server.clients import ClientsFile
from imagegate_server.gateway.edge.admin import AdminServicer
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.guard import Guard
from imagegate_server.gateway.edge.once import OnceCalls
from imagegate_server.gateway.edge.quota import QuotaServicer
from imagegate_server.gateway.edge.servicer import ImagesServicer
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.stored import StoredImagesServicer
from imagegate_server.gateway.edge.tenancy import Tenancy
from imagegate_server.gateway.edge.wire import (
    ADMIN_SERVICE,
    QUOTA_SERVICE,
    STORED_SERVICE,
    add_images_service,
    add_service,
)
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.jobs.grpc_wiring import SERVICE_NAMES as JOBS_SERVICES
from imagegate_server.jobs.grpc_wiring import add_jobs_services, build_jobs
from imagegate_server.jobs.operation_view import OperationView
from imagegate_server.jobs.service import Jobs
from imagegate_server.jobs.store import JobStore
from imagegate_server.limits import Limiter
from imagegate_server.metrics import Metrics
from imagegate_server.pricing import PriceTable
from imagegate_server.routing import Router
from imagegate_server.settings import Settings
from imagegate_server.store import ResultStore
from imagegate_server.tls import ServerCertificates

if TYPE_CHECKING:
    from imagegate_server.tracing.provider import Tracing

SERVICE_NAME = images_service_pb2.DESCRIPTOR.services_by_name["ImagesService"].full_name
# Named health services for Kubernetes probes: readiness turns NOT_SERVING when the
# drain starts; liveness stays SERVING as long as the process serves at all.
READINESS = "readiness"
LIVENESS = "liveness"
HEALTH_SERVICES = ("", SERVICE_NAME, READINESS, LIVENESS)
DRAINED_SERVICES = ("", SERVICE_NAME, READINESS)


def add_services(
    server: grpc.aio.Server,
    *,
    settings: Settings,
    router: Router,
    limiter: Limiter,
    clients: ClientsFile | None,
    store: ResultStore,
    prices: PriceTable,
    metrics: Metrics,
    tracing: Tracing | None,
    health_servicer: object,
    certificates: ServerCertificates | None,
    refuse_retired: bool,
    job_store: JobStore,
) -> Jobs:
    """``certificates``: the main port's TLS, if any; ``refuse_retired``: calls naming
    a retired model are refused here rather than sent. Returns the jobs stage, for
    the gateway to start once it serves."""
    callers = Authenticator(
        clients,
        required=auth_required(settings),
        certificates=certificates is not None and certificates.requires_client_certificates,
        on_reload=metrics.known_clients,
    )
    tenancy = Tenancy(limiter, prices, settings)
    storage = Storage(store, settings)
    requests = RequestBuilder(
        settings, refuse_retired=refuse_retired, on_spooled=metrics.set_spooled_bytes
    )
    jobs = build_jobs(
        settings=settings, store=job_store, router=router, requests=requests,
        pricer=Pricer(router.prices_for, prices, metrics), results=store, tenancy=tenancy,
        callers=callers, metrics=metrics, tracer=tracing.jobs if tracing is not None else None,
    )  # fmt: skip
    servicer = ImagesServicer(
        router,
        settings,
        requests=requests,
        callers=callers,
        tenancy=tenancy,
        storage=storage,
        prices=prices,
        metrics=metrics,
        tracer=tracing.rpc_tracer(SERVICE_NAME) if tracing is not None else None,
        once=OnceCalls(
            jobs, jobs.runner.execution, OperationView(
                store, settings.max_send_message_bytes, jobs.runner.execution.recent
            ),
            settings.upstream_timeout_s, settings.jobs_retention_s,
        ),
    )  # fmt: skip
    add_images_service(servicer.behaviour, server)
    quota_tracer = tracing.rpc_tracer(QUOTA_SERVICE.full_name) if tracing is not None else None
    quota = QuotaServicer(
        callers,
        tenancy,
        storage,
        prices,
        Guard(settings.upstream_timeout_s, quota_tracer),
        metrics.rpc("GetQuota", QUOTA_SERVICE),
        jobs=jobs,
    )
    add_service(server, QUOTA_SERVICE, quota.behaviours())
    admin_tracer = tracing.rpc_tracer(ADMIN_SERVICE.full_name) if tracing is not None else None
    admin = AdminServicer(
        callers,
        clients,
        limiter,
        prices,
        Guard(settings.upstream_timeout_s, admin_tracer),
        router,
        lambda method: metrics.rpc(method, ADMIN_SERVICE),
    )
    add_service(server, ADMIN_SERVICE, admin.behaviours())
    stored_tracer = tracing.rpc_tracer(STORED_SERVICE.full_name) if tracing is not None else None
    stored = StoredImagesServicer(
        callers,
        storage,
        Guard(settings.upstream_timeout_s, stored_tracer),
        metrics.rpc("GetStoredImage", STORED_SERVICE),
    )
    add_service(server, STORED_SERVICE, stored.behaviours())
    jobs_tracer = tracing.rpc_tracer(JOBS_SERVICES[0]) if tracing is not None else None
    add_jobs_services(
        server, jobs, settings=settings, results=store, callers=callers, tenancy=tenancy,
        storage=storage, requests=requests, metrics=metrics,
        guard=Guard(settings.upstream_timeout_s, jobs_tracer),
    )  # fmt: skip
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            QUOTA_SERVICE.full_name,
            ADMIN_SERVICE.full_name,
            STORED_SERVICE.full_name,
            *JOBS_SERVICES,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return jobs


def auth_required(settings: Settings) -> bool:
    """Every call must authenticate: with a clients file or a client CA, unless the
    operator serves anonymous callers on purpose (IMAGEGATE_AUTH=none)."""
    configured = settings.clients_file is not None or settings.tls_client_ca_file is not None
    return settings.auth == "auto" and configured
