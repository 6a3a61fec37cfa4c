"""The result store's metrics (the store's ``StoreObserver``): bytes and objects
written, latency and errors per operation, sweeps, and the local link port's answers.

Labels are bounded: ``backend`` (local, s3), ``operation`` (put, get, delete, list,
link), ``kind`` (the store's error kinds), ``outcome``, ``status`` (an HTTP status
class of the link port). No key, client or URL is a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from imagegate_server.metrics.series import Children

# A write is a disk write or an S3 request or three: milliseconds to a minute.
STORE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
)  # fmt: skip
_OPERATIONS = frozenset({"put", "get", "delete", "list", "link"})
_KINDS = frozenset(
    {"unreachable", "timeout", "denied", "not_found", "refused", "io", "full", "cancelled"}
)
_OUTCOMES = frozenset({"swept", "skipped", "failed"})
_LINK_STATUSES = frozenset({200, 206, 304, 403, 404, 412, 416})


class StoreMetrics:
    """Created by :class:`~imagegate_server.metrics.Metrics` as ``metrics.store``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        reg = registry
        self._bytes = Children(
            Counter(
                "imagegate_store_written_bytes_total",
                "Bytes of results written to the result store (visible objects only).",
                ("backend",),
                registry=reg,
            ).labels
        )
        self._objects = Children(
            Counter(
                "imagegate_store_written_objects_total",
                "Results written to the result store (visible objects only).",
                ("backend",),
                registry=reg,
            ).labels
        )
        self._seconds = Children(
            Histogram(
                "imagegate_store_seconds",
                "Duration of one result store operation, successful or not.",
                ("backend", "operation"),
                buckets=STORE_BUCKETS,
                registry=reg,
            ).labels
        )
        self._errors = Children(
            Counter(
                "imagegate_store_errors_total",
                "Result store operations that failed, by kind (unreachable, timeout, "
                "denied, not_found, refused, io, full).",
                ("backend", "operation", "kind"),
                registry=reg,
            ).labels
        )
        self._sweeps = Children(
            Counter(
                "imagegate_store_sweeps_total",
                "Sweeps of expired results: swept, skipped (another replica held the "
                "sweep) or failed.",
                ("outcome",),
                registry=reg,
            ).labels
        )
        self._swept_objects = Counter(
            "imagegate_store_swept_objects_total",
            "Expired results deleted by the sweeper.",
            registry=reg,
        )
        self._swept_bytes = Counter(
            "imagegate_store_swept_bytes_total",
            "Bytes of expired results deleted by the sweeper.",
            registry=reg,
        )
        self._links = Children(
            Counter(
                "imagegate_store_link_requests_total",
                "Requests to the local store's link port, by HTTP status (403: a "
                "forged, altered or expired link, or not a link at all).",
                ("status",),
                registry=reg,
            ).labels
        )

    def operation(self, backend: str, operation: str, seconds: float) -> None:
        self._seconds(_backend(backend), _of(operation, _OPERATIONS)).observe(max(seconds, 0.0))

    def written(self, backend: str, size: int) -> None:
        self._objects(_backend(backend)).inc()
        if size > 0:
            self._bytes(_backend(backend)).inc(size)

    def failed(self, backend: str, operation: str, kind: str, seconds: float) -> None:
        labels = (_backend(backend), _of(operation, _OPERATIONS))
        self._seconds(*labels).observe(max(seconds, 0.0))
        self._errors(*labels, _of(kind, _KINDS)).inc()

    def swept(self, outcome: str, objects: int, size: int) -> None:
        self._sweeps(_of(outcome, _OUTCOMES)).inc()
        if objects > 0:
            self._swept_objects.inc(objects)
        if size > 0:
            self._swept_bytes.inc(size)

    def link_request(self, status: int) -> None:
        self._links(str(status) if status in _LINK_STATUSES else "other").inc()


def _backend(name: str) -> str:
    return name if name in ("local", "s3") else "other"


def _of(value: str, known: frozenset[str]) -> str:
    return value if value in known else "other"
