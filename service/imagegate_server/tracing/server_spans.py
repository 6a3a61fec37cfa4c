"""A call's SERVER span, made by the edge when the call arrives and ended with its status.

It follows the RPC semantic conventions as of semconv 1.44 (``rpc.system.name``,
fully qualified ``rpc.method``, ``rpc.status_code`` as the status name; span name
``rpc.method``), with the GenAI attributes an image call has:
``gen_ai.operation.name`` (``image_generation``, ``image_edit`` or
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
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from imagegate_server.gateway.edge.rpc import Metadata, RpcCall
from imagegate_server.gateway.edge.wire import RPCS, SERVICE
from imagegate_server.tracing.conventions import MAX_MODEL, PROPAGATOR, PROVIDER, gen_ai_operation

# The RPC conventions' attribute for the status name; semconv after 1.44 may call it
# rpc.response.status_code.
RPC_STATUS_CODE = "rpc.status_code"
# gRPC server spans: only these codes are errors (the rest are the caller's doing).
SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_IMAGES_OPERATIONS = {rpc.name: rpc.operation.value for rpc in RPCS}
_TRACE_CONTEXT = ("traceparent", "tracestate")


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
    return PROPAGATOR.extract(carrier)


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
        attributes["gen_ai.request.model"] = call.model[:MAX_MODEL]
    if call.requested_images is not None:
        attributes["gen_ai.request.choice.count"] = call.requested_images
    if call.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = call.input_tokens
    if call.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = call.output_tokens
    if call.cost_micros is not None:
        attributes["imagegate.cost_usd"] = call.cost_micros / 1_000_000
    return attributes
