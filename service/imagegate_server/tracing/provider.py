"""The process's traces, on OpenTelemetry's SDK: imported only when traces are on.

:class:`Tracing` holds the tracer provider (its resource and exporters) and hands
out the hooks of the edge (SERVER spans, :mod:`.server_spans`) and of the
upstream (CLIENT spans, :mod:`.attempt_spans`).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from imagegate_server import __version__
from imagegate_server.tracing.attempt_spans import AttemptSpans
from imagegate_server.tracing.config import Exporter, TraceSettings
from imagegate_server.tracing.job_spans import JobSpans
from imagegate_server.tracing.server_spans import ServerSpans
from imagegate_server.tracing.store_spans import StoreSpans

# The "logger" of its lines, unchanged since tracing.spans held this class.
log = logging.getLogger("imagegate_server.tracing.spans")

SERVICE_NAME = "imagegate"


class Tracing:
    """One process's traces: its tracer provider and the hooks of the edge
    (:meth:`rpc_tracer`), of the upstream (:attr:`upstream`) and of the result store
    (:attr:`store`)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("imagegate_server", __version__)
        self.upstream = AttemptSpans(self._tracer)
        """The upstream's hook: a CLIENT span per HTTP attempt."""
        self.store = StoreSpans(self._tracer)
        """The result store's hook: a span per write."""
        self.jobs = JobSpans(self._tracer)
        """The jobs stage's hook: a span per run, linked to its submit's."""

    @classmethod
    def exporting(cls, settings: TraceSettings, exporters: tuple[Exporter, ...]) -> Tracing:
        """Spans batched to each exporter, configured by the ``OTEL_*`` variables."""
        # Shut down by the gateway's stop (after its drain), not at interpreter exit.
        provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
        for name in exporters:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        extra: dict[str, object] = {"exporters": list(exporters)}
        if "otlp" in exporters:
            extra["endpoint"] = settings.describe()
        log.info("traces on", extra=extra)
        return cls(provider)

    @classmethod
    def with_exporter(cls, exporter: SpanExporter) -> Tracing:
        """Each span handed to ``exporter`` as it ends (for tests: an in-memory one)."""
        provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider)

    def rpc_tracer(self, service: str) -> ServerSpans:
        """The edge's hook for the calls of ``service`` (its full name)."""
        return ServerSpans(self._tracer, service)

    async def aclose(self) -> None:
        """Export what is still batched and stop (at gateway stop, after the drain)."""
        await asyncio.to_thread(self._provider.shutdown)


def _resource() -> Resource:
    # The operator's OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES)
    # wins; otherwise it is "imagegate".
    named = OTELResourceDetector().detect().attributes.get("service.name")
    return Resource.create({"service.name": named or SERVICE_NAME, "service.version": __version__})


def _exporter(name: Exporter) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    # One compact JSON line per span on stderr, beside the logs: a worker's stdout is
    # its pipe to the supervisor.
    return ConsoleSpanExporter(out=sys.stderr, formatter=_json_line)


def _json_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"
