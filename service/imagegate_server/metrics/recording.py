""":class:`Metrics`: every metric imagegate exports, in one registry per process,
and the only methods that record them.

Each stage's metrics are defined beside the methods that record them: calls
(:mod:`.calls`), limits and spend (:mod:`.limits`), upstreams (:mod:`.upstreams`),
the server process and its connections (:mod:`.server`), the result store
(:mod:`.store`), jobs (:mod:`.jobs`) and the gRPC server metrics of each method
(:mod:`.rpc`, handed out by :meth:`Metrics.rpc`). Label children are cached
(:mod:`.series`) and label values normalised by :mod:`.labels`: nothing a caller
sends can add series.

With several worker processes, prometheus-client's multiprocess mode (the
``PROMETHEUS_MULTIPROC_DIR`` variable, set by the supervisor before a worker
starts) writes these values to per-process files that the supervisor sums; the
gauges say how to combine processes (``multiprocess_mode``).
"""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry

from imagegate_server.metrics.calls import CallRecording
from imagegate_server.metrics.jobs import JobMetrics
from imagegate_server.metrics.labels import ClientLabels, UpstreamLabels
from imagegate_server.metrics.limits import LimitRecording
from imagegate_server.metrics.rpc import SERVICE, RpcFamilies, RpcMetrics
from imagegate_server.metrics.server import ServerRecording
from imagegate_server.metrics.store import StoreMetrics
from imagegate_server.metrics.upstreams import UpstreamRecording


class Metrics(UpstreamRecording, CallRecording, LimitRecording, ServerRecording):
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
        """The result store's metrics (its ``StoreObserver``)."""
        self.jobs = JobMetrics(reg, self.clients)
        """The jobs stage's metrics (its ``JobObserver``)."""
        UpstreamRecording.__init__(self, reg)
        CallRecording.__init__(self, reg)
        LimitRecording.__init__(self, reg)
        ServerRecording.__init__(self, reg)

    def rpc(self, method: str, service: ServiceDescriptor = SERVICE) -> RpcMetrics:
        """The metrics of a method, by name (``"CreateImageEdit"``), of ImagesService
        or another of our services (QuotaService).

        Raises ``KeyError`` for a name the service does not have (a programming error).
        """
        return self._rpc.method(method, service)
