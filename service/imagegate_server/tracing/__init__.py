"""OpenTelemetry traces: a SERVER span per RPC, a CLIENT span per upstream attempt,
a span per result store write.

Off unless the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``; see
:mod:`imagegate_server.tracing.config`). Nothing of OpenTelemetry is imported until
then: this package's ``__init__`` and ``config`` import none of it, so a gateway
without traces (and ``imagegate --help``) pays nothing.

The stages define their own seams and know nothing of OpenTelemetry: the edge's
:class:`~imagegate_server.gateway.edge.rpc.RpcTracer` (one span per call, ended
with the call's status and what it produced) and the upstream's
:class:`~imagegate_server.upstream.observe.UpstreamTracer` (one span per HTTP
attempt, whose trace context goes out in the request's ``traceparent`` header).
The result store's :class:`~imagegate_server.store.observe.StoreTracer` (a span per
write) is the third. :class:`~imagegate_server.tracing.provider.Tracing` implements
all of them.

Public API: :func:`tracing_from_environment`, :class:`TraceSettings`; the
``Tracing`` type itself lives in :mod:`imagegate_server.tracing.provider` (import
it only where traces are on, or under ``TYPE_CHECKING``), the spans in
:mod:`~imagegate_server.tracing.server_spans`,
:mod:`~imagegate_server.tracing.attempt_spans` and :mod:`~imagegate_server.tracing.store_spans`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegate_server.tracing.config import TraceSettings

if TYPE_CHECKING:
    from imagegate_server.tracing.provider import Tracing


def tracing_from_environment(settings: TraceSettings | None = None) -> Tracing | None:
    """The process's tracing as the ``OTEL_*`` variables configure it, or None when
    they leave it off. Raises :class:`~imagegate_server.errors.StartupError` for a
    configuration it cannot honour (one line, naming the variable)."""
    settings = settings if settings is not None else TraceSettings.from_environment()
    exporters = settings.exporters()
    if not exporters:
        return None
    from imagegate_server.tracing.provider import Tracing  # OpenTelemetry, only now

    return Tracing.exporting(settings, exporters)


__all__ = ["TraceSettings", "tracing_from_environment"]
