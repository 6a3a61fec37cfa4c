"""Each write to the result store is a span, a child of the call's span: INTERNAL
for the local directory, CLIENT for S3 (a request to another service).

Attributes: ``imagegate.store.backend``, ``imagegate.store.object`` (the object's
key: no bucket, no URL, no signature), ``imagegate.store.content_type``,
``imagegate.store.bytes`` once written, and ``error.type`` (the store's error kind)
when it failed.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode


class StoreSpans:
    """The result store's ``StoreTracer``."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def write(self, backend: str, key: str, content_type: str) -> StoreWriteSpan:
        span = self._tracer.start_span(
            f"store put {backend}",
            kind=SpanKind.CLIENT if backend == "s3" else SpanKind.INTERNAL,
            attributes={
                "imagegate.store.backend": backend,
                "imagegate.store.object": key,
                "imagegate.store.content_type": content_type[:100],
            },
        )
        return StoreWriteSpan(span)


class StoreWriteSpan:
    """One write's span (the store's ``StoreSpan``)."""

    __slots__ = ("_ended", "_span")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._ended = False

    def written(self, size: int) -> None:
        self._span.set_attribute("imagegate.store.bytes", size)

    def failed(self, kind: str) -> None:
        self._span.set_attribute("error.type", kind)
        self._span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._span.end()
