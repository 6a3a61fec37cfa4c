"""What the gateway server process records about itself: its starts, and its
callers' connections per port (open, the most it holds, and those it closed).

Labels are bounded: ``port`` is the gateway's name for a port (``grpc``,
``health``), never a caller's; ``reason`` is the gateway's own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from imagegate_server.metrics.series import Children


class ServerRecording:
    """Part of :class:`~imagegate_server.metrics.Metrics`."""

    def __init__(self, reg: CollectorRegistry) -> None:
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

    def server_started(self) -> None:
        """Called once by the gateway when its gRPC server serves."""
        self._server_starts.inc()

    def connections_open(self, port: str, count: int) -> None:
        """``port``: ``grpc`` or ``health`` (the gateway's names, never a caller's)."""
        self._connections_open(port).set(count)

    def connections_limit(self, port: str, limit: int) -> None:
        self._connections_limit(port).set(limit)

    def connections_closed(self, port: str, reason: str, count: int) -> None:
        if count > 0:
            self._connections_closed(port, reason).inc(count)
