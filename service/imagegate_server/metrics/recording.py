"""Every metric imagegate exports, created here (the gRPC server ones through
:mod:`.rpc`), and the only methods that record them.

The edge calls these directly from its own per-RPC bookkeeping; the gRPC server
metrics of each method are :mod:`.rpc`'s, handed out by :meth:`Metrics.rpc`. Label
children are cached (:mod:`.series`) and label values normalised by
:mod:`.labels`: nothing a caller sends can add series.

With several worker processes, prometheus-client's multiprocess mode (the
``PROMETHEUS_MULTIPROC_DIR`` variable, set by the supervisor before a worker
starts) writes these values to per-process files that the supervisor sums; the
gauges say how to combine processes (``multiprocess_mode``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from imagegate_server.metrics import labels
from imagegate_server.metrics.jobs import JobMetrics
from imagegate_server.metrics.labels import ClientLabels, UpstreamLabels
from imagegate_server.metrics.rpc import SERVICE, RpcFamilies, RpcMetrics
from imagegate_server.metrics.series import LONG_BUCKETS, Children
from imagegate_server.metrics.store import StoreMetrics

LIMITER_STATES = ("up", "refusing", "unreachable")


class Metrics:
    """Every metric of one gateway process, in its own registry.

    One instance per process: in multiprocess mode all instances of a process write
    to the same files, so a second one would see the first one's counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.clients = ClientLabels()
        self.upstreams = UpstreamLabels()
        self._rpc = RpcFamilies(reg)
        self.store = StoreMetrics(reg)
        self.jobs = JobMetrics(reg, self.clients)
        """The jobs stage's metrics (its ``JobObserver``)."""
        """The result store's metrics (its ``StoreObserver``)."""

        self._upstream_requests = Children(
            Counter(
                "imagegate_upstream_requests_total",
                "HTTP requests to the upstreams, by upstream, model and HTTP status or "
                "failure (connect_error, timeout, reset); each retry is a request.",
                ("upstream", "model", "status"),
                registry=reg,
            ).labels
        )
        self._upstream_seconds = Children(
            Histogram(
                "imagegate_upstream_seconds",
                "Duration of one upstream HTTP request, until its answer or failure.",
                ("upstream", "model"),
                buckets=LONG_BUCKETS,
                registry=reg,
            ).labels
        )
        self._retries = Children(
            Counter(
                "imagegate_upstream_retries_total",
                "Upstream requests retried on the same upstream, by upstream and cause "
                "(connect, rate_limited, should_retry).",
                ("upstream", "cause"),
                registry=reg,
            ).labels
        )
        self._failovers = Children(
            Counter(
                "imagegate_upstream_failovers_total",
                "Calls moved from an upstream to the next one after a failure that billed "
                "nothing, by the upstream that failed and cause (connect, rate_limited, "
                "server_error: x-should-retry or a 5xx before the upload was all sent).",
                ("upstream", "cause"),
                registry=reg,
            ).labels
        )
        self._ceiling_skips = Children(
            Counter(
                "imagegate_upstream_ceiling_skips_total",
                "Calls that passed an upstream by because it was at its requests or images "
                "per minute ceiling (from the upstreams file).",
                ("upstream",),
                registry=reg,
            ).labels
        )
        self._circuit_open = Children(
            Gauge(
                "imagegate_upstream_circuit_open",
                "1 while an upstream's circuit breaker keeps calls off it (open or "
                "half-open), else 0. Each process has its own breakers.",
                ("upstream",),
                registry=reg,
                multiprocess_mode="livemax",
            ).labels
        )
        self._answers_rejected = Children(
            Counter(
                "imagegate_upstream_answers_rejected_total",
                "Upstream answers not taken (the call got UNAVAILABLE and was charged its "
                "estimate), by ErrorInfo reason (UPSTREAM_ANSWER_TOO_LARGE, UPSTREAM_BAD_IMAGE, "
                "UPSTREAM_ENCODING, UPSTREAM_NO_IMAGES, UPSTREAM_BAD_ANSWER).",
                ("reason",),
                registry=reg,
            ).labels
        )
        self._usage_anomalies = Children(
            Counter(
                "imagegate_upstream_usage_anomalies_total",
                "Answers whose token usage could not be trusted (missing, invalid, "
                "implausible); each such call was charged its estimate.",
                ("kind",),
                registry=reg,
            ).labels
        )
        self._images = Children(
            Counter(
                "imagegate_images_total",
                "Final images returned to callers.",
                ("model", "operation"),
                registry=reg,
            ).labels
        )
        self._partial_images = Children(
            Counter(
                "imagegate_partial_images_total",
                "Partial images relayed to callers of the streaming RPCs.",
                ("model", "operation"),
                registry=reg,
            ).labels
        )
        self._upload_bytes = Children(
            Counter(
                "imagegate_upload_bytes_total",
                "File bytes uploaded by callers (edits, variations).",
                ("operation",),
                registry=reg,
            ).labels
        )
        self._result_bytes = Children(
            Counter(
                "imagegate_result_bytes_total",
                "Image bytes returned to callers (decoded, as sent).",
                ("operation",),
                registry=reg,
            ).labels
        )
        self._inflight = Children(
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
        self._spooled_now = Gauge(
            "imagegate_upload_spool_bytes",
            "Upload bytes held in spool files now (reserved for declared uploads, or "
            "written), all clients together.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._streams_closed = Children(
            Counter(
                "imagegate_streams_closed_total",
                "Upload streams the gateway ended early, by reason: first_message_timeout "
                "and upload_stalled (the caller sent nothing in time), refused_drained (a "
                "refusal mid-upload, answered once the caller had sent the rest) and "
                "refused_cut (answered at the bound while the caller was still sending).",
                ("reason",),
                registry=reg,
            ).labels
        )
        self._refusals = Children(
            Counter(
                "imagegate_limit_refusals_total",
                "Calls refused by a per-client or gateway-wide limit, by limit and client.",
                ("limit", "client"),
                registry=reg,
            ).labels
        )
        self._spend = Children(
            Counter(
                "imagegate_spend_usd_total",
                "Spend computed from usage, in US dollars, by client, model and the "
                "upstream that answered.",
                ("client", "model", "upstream"),
                registry=reg,
            ).labels
        )
        # Most recent observation of any live process: after an outage, the first
        # worker that reaches the upstream again flips the fleet's view back.
        self._upstream_up = Children(
            Gauge(
                "imagegate_upstream_up",
                "1 when the last attempt to reach the upstream got an HTTP answer, else 0.",
                ("upstream",),
                registry=reg,
                multiprocess_mode="livemostrecent",
            ).labels
        )
        self._limiter_up = Gauge(
            "imagegate_limiter_up",
            "1 when the limiter's store answers and accepts commands (always 1 for the "
            "in-memory limiter), else 0: see imagegate_limiter_state for which way it fails.",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        # One series per state, 1 for the current one (a state set): "answering but
        # refusing" (a wrong password, no permission, out of memory, a Cluster that is
        # down) needs a person, "unreachable" a network or a server.
        self._limiter_state = Gauge(
            "imagegate_limiter_state",
            "The limiter's store: 1 for its current state (up, refusing: it answers with "
            "errors, unreachable: no connection or no answer in time), 0 for the others.",
            ("state",),
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._server_starts = Counter(
            "imagegate_server_starts_total",
            "Gateway server processes started (a rising rate means workers crash and restart).",
            registry=reg,
        )
        self._connections_open = Children(
            Gauge(
                "imagegate_connections_open",
                "Connections from callers, by port (grpc, health), at the last sweep.",
                ("port",),
                registry=reg,
                multiprocess_mode="livesum",
            ).labels
        )
        self._connections_limit = Children(
            Gauge(
                "imagegate_connections_limit",
                "Connections a port holds at most; gRPC closes new ones past it.",
                ("port",),
                registry=reg,
                multiprocess_mode="livesum",
            ).labels
        )
        self._connections_closed = Children(
            Counter(
                "imagegate_connections_closed_total",
                "Connections the gateway closed, by port and reason (no_call: no call "
                "started in time; per_address: past the address's cap).",
                ("port", "reason"),
                registry=reg,
            ).labels
        )
        self.set_limiter_state("up")

    # -- gRPC ----------------------------------------------------------------------

    def rpc(self, method: str, service: ServiceDescriptor = SERVICE) -> RpcMetrics:
        """The metrics of a method, by name (``"CreateImageEdit"``), of ImagesService
        or another of our services (QuotaService).

        Raises ``KeyError`` for a name the service does not have (a programming error).
        """
        return self._rpc.method(method, service)

    # -- upstream ------------------------------------------------------------------

    def known_upstreams(self, names: Iterable[str]) -> None:
        """The names of the upstreams file (call again on every reload); other names
        are labelled ``other``. ``default`` (no upstreams file) is always known."""
        self.upstreams.known(names)

    def upstream_request(
        self, upstream: str, model: str, status: int | str, seconds: float
    ) -> None:
        """One upstream HTTP request ended: its HTTP status, or ``connect_error`` (no
        connection: refused, DNS, TLS, connect timeout), ``timeout`` (connected, no
        answer in time) or ``reset`` (the connection dropped mid-answer).

        Also updates ``imagegate_upstream_up``: an HTTP answer of any status means
        reachable, ``connect_error`` means not; the others say nothing about it.
        """
        upstream_label = self.upstreams(upstream)
        model_label = labels.model(model)
        status_label = labels.upstream_status(status)
        self._upstream_requests(upstream_label, model_label, status_label).inc()
        self._upstream_seconds(upstream_label, model_label).observe(max(seconds, 0.0))
        if status_label == "connect_error":
            self._upstream_up(upstream_label).set(0)
        elif status_label not in labels.UPSTREAM_FAILURES:
            self._upstream_up(upstream_label).set(1)

    def upstream_retry(self, upstream: str, cause: str) -> None:
        """A retry is about to be sent: ``connect``, ``rate_limited`` or ``should_retry``."""
        self._retries(self.upstreams(upstream), labels.retry_cause(cause)).inc()

    def upstream_failover(self, upstream: str, cause: str) -> None:
        """A call leaves ``upstream`` for the next one (see :data:`labels.FAILOVER_CAUSES`)."""
        self._failovers(self.upstreams(upstream), labels.failover_cause(cause)).inc()

    def upstream_ceiling_skip(self, upstream: str) -> None:
        """A call passed ``upstream`` by: it was at one of its ceilings."""
        self._ceiling_skips(self.upstreams(upstream)).inc()

    def set_circuit_open(self, upstream: str, is_open: bool) -> None:
        self._circuit_open(self.upstreams(upstream)).set(1 if is_open else 0)

    def upstream_answer_rejected(self, reason: str) -> None:
        """An answer was not taken: ``reason`` is its ``AnswerFault`` value."""
        self._answers_rejected(labels.answer_fault(reason)).inc()

    def usage_anomaly(self, kind: str) -> None:
        """An answer's usage was ``missing``, ``invalid`` or ``implausible``."""
        self._usage_anomalies(labels.usage_anomaly(kind)).inc()

    def set_upstream_up(self, upstream: str, up: bool) -> None:
        self._upstream_up(self.upstreams(upstream)).set(1 if up else 0)

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

    def set_spooled_bytes(self, count: int) -> None:
        """Upload bytes this process holds (or reserved) in spool files now."""
        self._spooled_now.set(count)

    def stream_closed(self, reason: str) -> None:
        """An upload stream ended early (see ``imagegate_streams_closed_total``)."""
        self._streams_closed(labels.stream_close_reason(reason)).inc()

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

    def spend(self, client: str | None, model: str, micro_usd: int, upstream: str | None) -> None:
        """Settled cost of a call, in integer micro-dollars (exported in dollars), by
        the upstream that answered (or last failed; None: the call reached none)."""
        if micro_usd > 0:
            labelled = self._spend(
                self.clients(client), labels.model(model), self.upstreams(upstream)
            )
            labelled.inc(micro_usd / 1_000_000)

    def set_limiter_state(self, state: str) -> None:
        """``up``, ``refusing`` or ``unreachable`` (the limiter's ``state``)."""
        self._limiter_up.set(1 if state == "up" else 0)
        for each in LIMITER_STATES:
            self._limiter_state.labels(each).set(1 if each == state else 0)

    # -- connections -----------------------------------------------------------------

    def connections_open(self, port: str, count: int) -> None:
        """``port``: ``grpc`` or ``health`` (the gateway's names, never a caller's)."""
        self._connections_open(port).set(count)

    def connections_limit(self, port: str, limit: int) -> None:
        self._connections_limit(port).set(limit)

    def connections_closed(self, port: str, reason: str, count: int) -> None:
        if count > 0:
            self._connections_closed(port, reason).inc(count)

    # -- process ---------------------------------------------------------------------

    def server_started(self) -> None:
        """Called once by the gateway when its gRPC server serves."""
        self._server_starts.inc()
