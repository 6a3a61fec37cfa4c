"""Prometheus metrics: every metric the service exports is defined in
:mod:`imagegate_server.metrics.recording` and recorded only through :class:`Metrics`.

Public API: :class:`Metrics` (one per process; the edge records through it),
:class:`RpcMetrics`, :class:`MetricsEndpoint` (``GET /metrics`` on its own port),
:func:`exported_names` (what a dashboard may query), and the multiprocess helpers
the worker supervisor uses (:mod:`imagegate_server.metrics.multiprocess`).
"""

from imagegate_server.metrics.exposition import MetricsEndpoint
from imagegate_server.metrics.recording import (
    LONG_BUCKETS,
    Metrics,
    RpcMetrics,
    exported_labels,
    exported_names,
)

__all__ = [
    "LONG_BUCKETS",
    "Metrics",
    "MetricsEndpoint",
    "RpcMetrics",
    "exported_labels",
    "exported_names",
]
