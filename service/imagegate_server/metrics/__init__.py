"""Prometheus metrics: every metric the service exports is recorded only through
:class:`Metrics` (:mod:`.recording`), defined beside its stage's methods (:mod:`.calls`,
:mod:`.limits`, :mod:`.upstreams`, :mod:`.server`, :mod:`.store`, :mod:`.jobs`, the
gRPC server metrics in :mod:`.rpc`).

Public API: :class:`Metrics` (one per process; the edge records through it, the
result store through its ``store``, :mod:`.store`),
:class:`RpcMetrics`, :class:`MetricsEndpoint` (``GET /metrics`` on its own port),
:func:`exported_names` (what a dashboard may query), and the multiprocess helpers
the worker supervisor uses (:mod:`imagegate_server.metrics.multiprocess`).
"""

from imagegate_server.metrics.exported import exported_labels, exported_names
from imagegate_server.metrics.exposition import MetricsEndpoint
from imagegate_server.metrics.recording import Metrics
from imagegate_server.metrics.rpc import RpcMetrics
from imagegate_server.metrics.series import LONG_BUCKETS

__all__ = [
    "LONG_BUCKETS",
    "Metrics",
    "MetricsEndpoint",
    "RpcMetrics",
    "exported_labels",
    "exported_names",
]
