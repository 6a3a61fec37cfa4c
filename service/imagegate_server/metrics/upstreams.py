"""What the upstream and routing stages record: each HTTP request to an upstream
(status, duration, reachability), retries, failovers, ceiling skips, open circuits,
and answers or usage the gateway would not trust.

Labels are bounded: ``upstream`` is a name of the upstreams file (``other`` for
the rest), ``model``, ``status``, ``cause``, ``reason`` and ``kind`` are normalised
by :mod:`.labels`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from imagegate_server.metrics import labels
from imagegate_server.metrics.labels import UpstreamLabels
from imagegate_server.metrics.series import LONG_BUCKETS, Children


class UpstreamRecording:
    """Part of :class:`~imagegate_server.metrics.Metrics` (its upstream observer)."""

    upstreams: UpstreamLabels

    def __init__(self, reg: CollectorRegistry) -> None:
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
