"""The grpc-ecosystem server metrics (``grpc_server_*``), per method of our services.

The edge records them from its own per-RPC bookkeeping (no gRPC interceptor: that
would wrap every handler and request iterator a second time).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from imagegate.v1 import images_service_pb2
from prometheus_client import CollectorRegistry, Counter, Histogram

from imagegate_server.metrics import labels
from imagegate_server.metrics.series import LONG_BUCKETS, Children

SERVICE = images_service_pb2.DESCRIPTOR.services_by_name["ImagesService"]
_RPC_LABELS = ("grpc_service", "grpc_method", "grpc_type")
_GRPC_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}


@dataclass(frozen=True, slots=True)
class RpcMetrics:
    """The grpc-ecosystem metrics of one method; get it from :meth:`Metrics.rpc`."""

    _started: Counter
    _received: Counter
    _sent: Counter
    _seconds: Histogram
    _handled: Children[Counter]

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


class RpcFamilies:
    """The ``grpc_server_*`` metrics in ``registry``, and each method's children."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def rpc_counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, (*_RPC_LABELS, *extra), registry=registry)

        self._started = rpc_counter("grpc_server_started_total", "RPCs started on the server.")
        self._handled = rpc_counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by gRPC status code.",
            ("grpc_code",),
        )
        self._received = rpc_counter(
            "grpc_server_msg_received_total", "RPC stream messages received by the server."
        )
        self._sent = rpc_counter(
            "grpc_server_msg_sent_total", "RPC stream messages sent by the server."
        )
        self._seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, whatever the status.",
            _RPC_LABELS,
            buckets=LONG_BUCKETS,
            registry=registry,
        )
        self._methods: dict[str, RpcMetrics] = {}

    def method(self, method: str, service: ServiceDescriptor) -> RpcMetrics:
        """Raises ``KeyError`` for a name the service does not have."""
        key = f"{service.full_name}/{method}"
        found = self._methods.get(key)
        if found is None:
            descriptor = service.methods_by_name[method]
            values = (
                service.full_name,
                method,
                _GRPC_TYPES[descriptor.client_streaming, descriptor.server_streaming],
            )
            handled = self._handled
            found = self._methods[key] = RpcMetrics(
                self._started.labels(*values),
                self._received.labels(*values),
                self._sent.labels(*values),
                self._seconds.labels(*values),
                Children(lambda code: handled.labels(*values, code)),
            )
        return found
