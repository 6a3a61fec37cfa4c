"""A job's run is a span of its own, linked to the span of the call that submitted it.

A job runs long after its submit's call ended, often on another replica, so its span
cannot be that call's child: it starts a trace of its own and carries an
OpenTelemetry *link* to the submit's span (whose ``traceparent`` the job keeps), as
the messaging conventions do for a message consumed later. The upstream attempt
spans of the run are its children. Span name ``image job``, kind CONSUMER;
attributes ``imagegate.job_id``, ``imagegate.client_id``, ``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.model``, and ``imagegate.job_state`` when
it ends (a failed or cancelled one is an error with ``error.type``).
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from imagegate_server.tracing.conventions import MAX_MODEL, PROPAGATOR, PROVIDER, gen_ai_operation


class JobSpans:
    """The jobs stage's ``JobTracer``."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def traceparent(self) -> str:
        """The current span's W3C ``traceparent`` (the submit's call), or ''."""
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
        return carrier.get("traceparent", "")

    def run(self, job_id: str, client: str, operation: str, model: str, submitted: str) -> JobSpan:
        """The run's span, current from here on in the running task."""
        links = []
        if submitted:
            linked = trace.get_current_span(PROPAGATOR.extract({"traceparent": submitted}))
            if linked.get_span_context().is_valid:
                links.append(Link(linked.get_span_context()))
        span = self._tracer.start_span(
            "image job",
            context=otel_context.Context(),  # a trace of its own: the submit call ended
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "imagegate.job_id": job_id,
                "imagegate.client_id": client,
                "gen_ai.operation.name": gen_ai_operation(operation),
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.request.model": model[:MAX_MODEL],
            },
        )
        otel_context.attach(trace.set_span_in_context(span))
        return JobSpan(span)


class JobSpan:
    __slots__ = ("_ended", "_span")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._ended = False

    def end(self, state: str) -> None:
        if self._ended:
            return
        self._ended = True
        self._span.set_attribute("imagegate.job_state", state)
        if state != "succeeded":
            self._span.set_attribute("error.type", state)
            self._span.set_status(Status(StatusCode.ERROR))
        self._span.end()
