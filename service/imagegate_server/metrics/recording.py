"""Every metric imagegate exports, and the only methods that record them.

The edge calls these directly from its own per-RPC bookkeeping (no gRPC
interceptor: that would wrap every handler and request iterator a second time).
Label children are looked up once per label tuple and cached, so recording costs a
dictionary lookup and an increment. Label values are normalised by
:mod:`imagegate_server.metrics.labels`: nothing a caller sends can add series.

With several worker processes, prometheus-client's multiprocess mode (the
``PROMETHEUS_MULTIPROC_DIR`` variable, set by the supervisor before a worker
starts) writes these values to per-process files that the supervisor sums; the
gauges say how to combine processes (``multiprocess_mode``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from imagegate.v1 import images_service_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from imagegate_server.metrics import labels
from imagegate_server.metrics.labels import ClientLabels

# Image calls take minutes (GPT image models at high quality: 1-2 min, and the
# upstream timeout defaults to 300 s), so buckets reach well past 300 s.
LONG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0,
    60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0,
)  # fmt: skip

SERVICE = images_service_pb2.DESCRIPTOR.services_by_name["ImagesService"]
_RPC_LABELS = ("grpc_service", "grpc_method", "grpc_type")
_GRPC_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}

# ``*_created`` series double the series count and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

C = TypeVar("C")


class _Children(Generic[C]):
    """``metric.labels(*values)`` cached per tuple (values are bounded, so is this)."""

    __slots__ = ("_cache", "_labels")

    def __init__(self, labelled: Callable[..., C]) -> None:
        self._labels = labelled
        self._cache: dict[Hashable, C] = {}

    def __call__(self, *values: str) -> C:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._labels(*values)
        return child


@dataclass(frozen=True, slots=True)
class RpcMetrics:
    """The grpc-ecosystem metrics of one method; get it from :meth:`Metrics.rpc`."""

    _started: Counter
    _received: Counter
    _sent: Counter
    _seconds: Histogram
    _handled: _Children[Counter]

    def started(self) -> None:
        """The call reached the servicer."""
        self._started.inc()

    def received(self, messages: int = 1) -> None:
        """Request messages read (1 for a unary request; each upload message)."""
        if messages > 0:
            self._received.inc(messages)

    def sent(self, messages: int = 1) -> None:
        """Response messages written (1 for a unary answer; each stream message)."""
        if messages > 0:
            self._sent.inc(messages)

    def handled(self, code: grpc.StatusCode | str, seconds: float) -> None:
        """The call ended with ``code`` (a StatusCode or its name) after ``seconds``."""
        self._handled(labels.grpc_code(code)).inc()
        self._seconds.observe(max(seconds, 0.0))


class Metrics:
    """Every metric of one gateway process, in its own registry.

    One instance per process: in multiprocess mode all instances of a process write
    to the same files, so a second one would see the first one's counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.clients = ClientLabels()

        def rpc_counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, (*_RPC_LABELS, *extra), registry=reg)

        self._rpc_started = rpc_counter("grpc_server_started_total", "RPCs started on the server.")
        self._rpc_handled = rpc_counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by gRPC status code.",
            ("grpc_code",),
        )
        self._rpc_received = rpc_counter(
            "grpc_server_msg_received_total", "RPC stream messages received by the server."
        )
        self._rpc_sent = rpc_counter(
            "grpc_server_msg_sent_total", "RPC stream messages sent by the server."
        )
        self._rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, whatever the status.",
            _RPC_LABELS,
            buckets=LONG_BUCKETS,
            registry=reg,
        )
        self._methods: dict[str, RpcMetrics] = {}

        self._upstream_requests = _Children(
            Counter(
                "imagegate_upstream_requests_total",
                "HTTP requests to the upstream, by HTTP status or failure "
                "(connect_error, timeout, reset); each retry is a request.",
                ("model", "status"),
                registry=reg,
            ).labels
        )
        self._upstream_seconds = _Children(
            Histogram(
                "imagegate_upstream_seconds",
                "Duration of one upstream HTTP request, until its answer or failure.",
                ("model",),
                buckets=LONG_BUCKETS,
                registry=reg,
            ).labels
        )
        self._retries = _Children(
            Counter(
                "imagegate_upstream_retries_total",
                "Upstream requests retried, by cause (connect, rate_limited, should_retry).",
                ("cause",),
                registry=reg,
            ).labels
        )
        self._images = _Children(
            Counter(
                "imagegate_images_total",
                "Final images returned to callers.",
                ("model", "operation"),
                registry=reg,
            ).labels
        )
        self._partial_images = _Children(
            Counter(
                "imagegate_partial_images_total",
                "Partial images relayed to callers of the streaming RPCs.",
                ("model", "operation"),
                registry=reg,
            ).labels
        )
        self._upload_bytes = _Children(
            Counter(
                "imagegate_upload_bytes_total",
                "File bytes uploaded by callers (edits, variations).",
                ("operation",),
                registry=reg,
            ).labels
        )
        self._result_bytes = _Children(
            Counter(
                "imagegate_result_bytes_total",
                "Image bytes returned to callers (decoded, as sent).",
                ("operation",),
                registry=reg,
            ).labels
        )
        self._inflight = _Children(
            Gauge(
                "imagegate_inflight_calls",
                "Image calls in progress, by client.",
                ("client",),
                registry=reg,
                multiprocess_mode="livesum",
            ).labels
        )
        self._spooled = Counter(
            "imagegate_upload_spooled_bytes_total",
            "Upload bytes written to temporary files (uploads past the spool threshold).",
            registry=reg,
        )
        self._refusals = _Children(
            Counter(
                "imagegate_limit_refusals_total",
                "Calls refused by a per-client or gateway-wide limit, by limit and client.",
                ("limit", "client"),
                registry=reg,
            ).labels
        )
        self._spend = _Children(
            Counter(
                "imagegate_spend_usd_total",
                "Spend computed from usage, in US dollars, by client and model.",
                ("client", "model"),
                registry=reg,
            ).labels
        )
        # Most recent observation of any live process: after an outage, the first
        # worker that reaches the upstream again flips the fleet's view back.
        self._upstream_up = Gauge(
            "imagegate_upstream_up",
            "1 when the last attempt to reach the upstream got an HTTP answer, else 0.",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._limiter_up = Gauge(
            "imagegate_limiter_up",
            "1 when the limiter's store is reachable (always 1 for the in-memory limiter).",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._server_starts = Counter(
            "imagegate_server_starts_total",
            "Gateway server processes started (a rising rate means workers crash and restart).",
            registry=reg,
        )
        self._limiter_up.set(1)

    # -- gRPC ----------------------------------------------------------------------

    def rpc(self, method: str, service: ServiceDescriptor = SERVICE) -> RpcMetrics:
        """The metrics of a method, by name (``"CreateImageEdit"``), of ImagesService
        or another of our services (QuotaService).

        Raises ``KeyError`` for a name the service does not have (a programming error).
        """
        key = f"{service.full_name}/{method}"
        found = self._methods.get(key)
        if found is None:
            descriptor = service.methods_by_name[method]
            values = (
                service.full_name,
                method,
                _GRPC_TYPES[descriptor.client_streaming, descriptor.server_streaming],
            )
            handled = self._rpc_handled
            found = self._methods[key] = RpcMetrics(
                self._rpc_started.labels(*values),
                self._rpc_received.labels(*values),
                self._rpc_sent.labels(*values),
                self._rpc_seconds.labels(*values),
                _Children(lambda code: handled.labels(*values, code)),
            )
        return found

    # -- upstream ------------------------------------------------------------------

    def upstream_request(self, model: str, status: int | str, seconds: float) -> None:
        """One upstream HTTP request ended: its HTTP status, or ``connect_error`` (no
        connection: refused, DNS, TLS, connect timeout), ``timeout`` (connected, no
        answer in time) or ``reset`` (the connection dropped mid-answer).

        Also updates ``imagegate_upstream_up``: an HTTP answer of any status means
        reachable, ``connect_error`` means not; the others say nothing about it.
        """
        model_label = labels.model(model)
        status_label = labels.upstream_status(status)
        self._upstream_requests(model_label, status_label).inc()
        self._upstream_seconds(model_label).observe(max(seconds, 0.0))
        if status_label == "connect_error":
            self._upstream_up.set(0)
        elif status_label not in labels.UPSTREAM_FAILURES:
            self._upstream_up.set(1)

    def upstream_retry(self, cause: str) -> None:
        """A retry is about to be sent: ``connect``, ``rate_limited`` or ``should_retry``."""
        self._retries(labels.retry_cause(cause)).inc()

    def set_upstream_up(self, up: bool) -> None:
        self._upstream_up.set(1 if up else 0)

    # -- results and uploads -----------------------------------------------------------

    def images(self, model: str, operation: str, count: int = 1) -> None:
        if count > 0:
            self._images(labels.model(model), labels.operation(operation)).inc(count)

    def partial_images(self, model: str, operation: str, count: int = 1) -> None:
        if count > 0:
            self._partial_images(labels.model(model), labels.operation(operation)).inc(count)

    def upload_bytes(self, operation: str, count: int) -> None:
        if count > 0:
            self._upload_bytes(labels.operation(operation)).inc(count)

    def result_bytes(self, operation: str, count: int) -> None:
        if count > 0:
            self._result_bytes(labels.operation(operation)).inc(count)

    def upload_spooled(self, count: int) -> None:
        """Bytes an upload wrote to its temporary file."""
        if count > 0:
            self._spooled.inc(count)

    # -- clients, limits, spend ------------------------------------------------------

    def known_clients(self, client_ids: Iterable[str]) -> None:
        """The ids of the clients file (call again on every reload); other ids are
        labelled ``other``, calls without a client ``anonymous``."""
        self.clients.known(client_ids)

    @contextlib.contextmanager
    def in_flight(self, client: str | None) -> Iterator[None]:
        """``with metrics.in_flight(client_id): ...`` around a call's whole life."""
        gauge = self._inflight(self.clients(client))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def limit_refused(self, limit: str, client: str | None) -> None:
        """A call was refused by ``limit`` (the limiter's name for it, e.g.
        ``images_per_minute``)."""
        self._refusals(labels.limit(limit), self.clients(client)).inc()

    def spend(self, client: str | None, model: str, micro_usd: int) -> None:
        """Settled cost of a call, in integer micro-dollars (exported in dollars)."""
        if micro_usd > 0:
            self._spend(self.clients(client), labels.model(model)).inc(micro_usd / 1_000_000)

    def set_limiter_up(self, up: bool) -> None:
        self._limiter_up.set(1 if up else 0)

    # -- process ---------------------------------------------------------------------

    def server_started(self) -> None:
        """Called once by the gateway when its gRPC server serves."""
        self._server_starts.inc()


def exported_names(registry: CollectorRegistry) -> frozenset[str]:
    """Metric names as a query writes them: counters with ``_total``, histograms by
    their base name (``_bucket``, ``_sum``, ``_count`` stripped), gauges as they are."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return frozenset(names)


def exported_labels(registry: CollectorRegistry) -> dict[str, frozenset[str]]:
    """The label names of each metric in :func:`exported_names`'s spelling (histograms
    also have ``le``), so a dashboard's ``by (...)`` can be checked against them."""
    names = {family.name: family.type for family in registry.collect()}
    labels: dict[str, frozenset[str]] = {}
    # prometheus-client has no public accessor for a metric's label names.
    for collector in list(registry._collector_to_names):
        family_name = getattr(collector, "_name", None)
        if family_name not in names:
            continue
        label_names = frozenset(getattr(collector, "_labelnames", ()))
        if names[family_name] == "counter":
            labels[f"{family_name}_total"] = label_names
        elif names[family_name] == "histogram":
            labels[family_name] = label_names | {"le"}
        else:
            labels[family_name] = label_names
    return labels
