"""The spans, on OpenTelemetry's SDK: imported only when traces are on.

A call's SERVER span follows the RPC semantic conventions as of semconv 1.44
(``rpc.system.name``, fully qualified ``rpc.method``, ``rpc.status_code`` as the
status name; span name ``rpc.method``), with the GenAI attributes an image call
has: ``gen_ai.operation.name`` (``image_generation``, ``image_edit`` or
``image_variation``: the GenAI conventions define no image operation, and these
are the names other gateways use), ``gen_ai.provider.name=openai``,
``gen_ai.request.model``, ``gen_ai.request.choice.count`` (``n``),
``gen_ai.output.type=image``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
and ours: ``imagegate.client_id``, ``imagegate.image_count`` (images returned),
``imagegate.cost_usd``, ``imagegate.request_id``, ``imagegate.upstream_request_id``.
Only the server-side error codes of the gRPC conventions (UNKNOWN,
DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS) make the span
an error with ``error.type``; a caller's own mistake (INVALID_ARGUMENT, a
refusal) is in ``rpc.status_code`` only.

Each upstream HTTP attempt is a CLIENT span, a child of the call's span, on the
HTTP client conventions (``POST /v1/images/generations``, ``http.request.method``,
``url.full``, ``server.address``/``port``, ``http.response.status_code``,
``http.request.resend_count`` on retries, ``error.type``: the status, or
``connect_error``, ``timeout``, ``reset``, ``protocol_error``, ``stream_error``,
``cancelled``) plus the GenAI operation, provider and model. Its own context goes
to the upstream in the ``traceparent`` header. The span lasts until the answer is
read (or the stream ends), not just until its headers arrive.

No attribute carries a prompt, a token, a key or the request's parameters beyond
the model and ``n``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from imagegate_server import __version__
from imagegate_server.gateway.edge.rpc import Metadata, RpcCall
from imagegate_server.gateway.edge.wire import RPCS, SERVICE
from imagegate_server.tracing.config import Exporter, TraceSettings

log = logging.getLogger(__name__)

SERVICE_NAME = "imagegate"
PROVIDER = "openai"
# The RPC conventions' attribute for the status name; semconv after 1.44 may call it
# rpc.response.status_code.
RPC_STATUS_CODE = "rpc.status_code"
# gRPC server spans: only these codes are errors (the rest are the caller's doing).
SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_IMAGES_OPERATIONS = {rpc.name: rpc.operation.value for rpc in RPCS}
_TRACE_CONTEXT = ("traceparent", "tracestate")
_MAX_MODEL = 100
_PROPAGATOR = TraceContextTextMapPropagator()


def gen_ai_operation(operation: str) -> str:
    """``generation`` -> ``image_generation`` (also ``image_edit``, ``image_variation``)."""
    return f"image_{operation}"


class Tracing:
    """One process's traces: its tracer provider and the hooks of the edge
    (:meth:`rpc_tracer`) and of the upstream (:attr:`upstream`)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("imagegate_server", __version__)
        self.upstream = AttemptSpans(self._tracer)
        """The upstream's hook: a CLIENT span per HTTP attempt."""

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


class ServerSpans:
    """SERVER spans of one gRPC service's calls (the edge's ``RpcTracer``)."""

    def __init__(self, tracer: trace.Tracer, service: str) -> None:
        self._tracer = tracer
        self._service = service
        self._operations = _IMAGES_OPERATIONS if service == SERVICE.full_name else {}

    def begin(self, method: str, metadata: Metadata | None) -> ServerSpan:
        parent = _caller_context(metadata)
        full_method = f"{self._service}/{method}"
        attributes: dict[str, AttributeValue] = {
            "rpc.system.name": "grpc",
            "rpc.method": full_method,
        }
        operation = self._operations.get(method)
        if operation is not None:
            attributes["gen_ai.operation.name"] = gen_ai_operation(operation)
            attributes["gen_ai.provider.name"] = PROVIDER
            attributes["gen_ai.output.type"] = "image"
        span = self._tracer.start_span(
            full_method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        # The call's span is the current one for the rest of the call, so that the
        # upstream's attempt spans are its children. Each grpc.aio call runs in a
        # task of its own, whose context ends with the call: nothing to detach.
        otel_context.attach(trace.set_span_in_context(span, parent))
        return ServerSpan(span, generative=operation is not None)


def _caller_context(metadata: Metadata | None) -> otel_context.Context | None:
    """The caller's W3C trace context (``traceparent``, ``tracestate``), if it sent one."""
    carrier = {
        key: value
        for key, value in metadata or ()
        if key in _TRACE_CONTEXT and isinstance(value, str)
    }
    if "traceparent" not in carrier:
        return None
    return _PROPAGATOR.extract(carrier)


class ServerSpan:
    """One call's span (the edge's ``CallSpan``)."""

    __slots__ = ("_ended", "_generative", "_span")

    def __init__(self, span: Span, *, generative: bool) -> None:
        self._span = span
        self._generative = generative
        self._ended = False

    def end(self, code: str, call: RpcCall) -> None:
        if self._ended:
            return
        self._ended = True
        attributes: dict[str, AttributeValue] = {
            RPC_STATUS_CODE: code,
            "imagegate.request_id": call.request_id,
        }
        if call.client is not None:
            attributes["imagegate.client_id"] = call.client
        if call.upstream_request_id:
            attributes["imagegate.upstream_request_id"] = call.upstream_request_id
        if self._generative:
            attributes.update(_generative(call))
        span = self._span
        span.set_attributes(attributes)
        if code in SERVER_ERRORS:
            span.set_attribute("error.type", code)
            span.set_status(Status(StatusCode.ERROR))
        span.end()


def _generative(call: RpcCall) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {"imagegate.image_count": call.images}
    if call.model is not None:
        attributes["gen_ai.request.model"] = call.model[:_MAX_MODEL]
    if call.requested_images is not None:
        attributes["gen_ai.request.choice.count"] = call.requested_images
    if call.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = call.input_tokens
    if call.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = call.output_tokens
    if call.cost_micros is not None:
        attributes["imagegate.cost_usd"] = call.cost_micros / 1_000_000
    return attributes


class AttemptSpans:
    """CLIENT spans of upstream HTTP attempts (the upstream's ``UpstreamTracer``)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._urls: dict[str, tuple[str, dict[str, AttributeValue]]] = {}

    def attempt(self, operation: str, model: str, url: str, resend_count: int) -> AttemptSpan:
        name, url_attributes = self._url(url)
        attributes: dict[str, AttributeValue] = {
            **url_attributes,
            "gen_ai.operation.name": gen_ai_operation(operation),
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": model[:_MAX_MODEL],
        }
        if resend_count > 0:
            attributes["http.request.resend_count"] = resend_count
        # Parent: the current span, i.e. the call's (see ServerSpans.begin).
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        return AttemptSpan(span)

    def _url(self, url: str) -> tuple[str, dict[str, AttributeValue]]:
        """Span name and URL attributes; one entry per operation's URL, so cached."""
        known = self._urls.get(url)
        if known is None:
            known = self._urls[url] = _url_attributes(url)
        return known


def _url_attributes(url: str) -> tuple[str, dict[str, AttributeValue]]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    # No credentials, query or fragment: url.full must carry none.
    full = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    attributes: dict[str, AttributeValue] = {
        "http.request.method": "POST",
        "url.full": full,
        "server.address": host,
        "server.port": port,
    }
    return f"POST {parts.path}", attributes


class AttemptSpan:
    """One HTTP attempt's span (the upstream's ``AttemptSpan``)."""

    __slots__ = ("_ended", "_failed", "_span")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._failed = False
        self._ended = False

    def headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(self._span))
        return carrier

    def answered(self, status: int, request_id: str | None) -> None:
        span = self._span
        span.set_attribute("http.response.status_code", status)
        if request_id:
            span.set_attribute("imagegate.upstream_request_id", request_id[:_MAX_MODEL])
        if status >= 400:
            self.failed(str(status))

    def failed(self, cause: str) -> None:
        if self._failed:
            return  # the first cause is the one (an error answer, then its body broke)
        self._failed = True
        self._span.set_attribute("error.type", cause)
        self._span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._span.end()
