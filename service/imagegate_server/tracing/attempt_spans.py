"""Each upstream HTTP attempt is a CLIENT span, a child of the call's span.

It is on the HTTP client conventions (``POST /v1/images/generations``,
``http.request.method``, ``url.full``, ``server.address``/``port``,
``http.response.status_code``, ``http.request.resend_count`` on retries,
``error.type``: the status, or ``connect_error``, ``timeout``, ``reset``,
``protocol_error``, ``stream_error``, ``cancelled``) plus the GenAI operation,
provider and model, and ``imagegate.upstream``: the name of the upstream it went to
(each failover attempt is a span of its own). Its own context goes to the upstream
in the ``traceparent`` header. The span lasts until the answer is read (or the
stream ends), not just until its headers arrive.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from imagegate_server.tracing.conventions import (
    AZURE_PROVIDER,
    MAX_MODEL,
    PROPAGATOR,
    PROVIDER,
    gen_ai_operation,
)


class AttemptSpans:
    """CLIENT spans of upstream HTTP attempts (the upstream's ``UpstreamTracer``)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._urls: dict[str, tuple[str, dict[str, AttributeValue]]] = {}

    def attempt(
        self, operation: str, model: str, url: str, resend_count: int, upstream: str, kind: str
    ) -> AttemptSpan:
        name, url_attributes = self._url(url)
        attributes: dict[str, AttributeValue] = {
            **url_attributes,
            "gen_ai.operation.name": gen_ai_operation(operation),
            "gen_ai.provider.name": AZURE_PROVIDER if kind == "azure" else PROVIDER,
            "gen_ai.request.model": model[:MAX_MODEL],
            "imagegate.upstream": upstream[:MAX_MODEL],
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
        PROPAGATOR.inject(carrier, trace.set_span_in_context(self._span))
        return carrier

    def answered(self, status: int, request_id: str | None) -> None:
        span = self._span
        span.set_attribute("http.response.status_code", status)
        if request_id:
            span.set_attribute("imagegate.upstream_request_id", request_id[:MAX_MODEL])
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
