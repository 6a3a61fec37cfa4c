"""What the image calls themselves record: calls in flight per client, images and
partial images returned, bytes uploaded and returned, upload spooling, and upload
streams the gateway ended early.

Labels are bounded: ``model``, ``operation`` and ``reason`` are normalised by
:mod:`.labels`; ``client`` is an id of the clients file (``other`` for the rest).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge

from imagegate_server.metrics import labels
from imagegate_server.metrics.labels import ClientLabels
from imagegate_server.metrics.series import Children


class CallRecording:
    """Part of :class:`~imagegate_server.metrics.Metrics`."""

    clients: ClientLabels

    def __init__(self, reg: CollectorRegistry) -> None:
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

    @contextlib.contextmanager
    def in_flight(self, client: str | None) -> Iterator[None]:
        """``with metrics.in_flight(client_id): ...`` around a call's whole life."""
        gauge = self._inflight(self.clients(client))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

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
