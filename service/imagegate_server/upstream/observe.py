"""What the upstream tells metrics and traces about its attempts (they observe; they
never steer), and the silent stand-ins used when nobody listens.

:class:`UpstreamObserver` hears of every attempt and retry (:class:`~imagegate_server.
metrics.Metrics` implements it); :class:`UpstreamTracer` starts an
:class:`AttemptSpan` per HTTP attempt (:mod:`imagegate_server.tracing` implements it).
"""

from __future__ import annotations

from typing import Protocol


class UpstreamObserver(Protocol):
    """Told of every attempt and retry (metrics observe; they never steer)."""

    def upstream_request(
        self, upstream: str, model: str, status: int | str, seconds: float
    ) -> None:
        """``upstream``: its name; ``status``: the HTTP status, or ``connect_error``,
        ``timeout``, ``reset``."""

    def upstream_retry(self, upstream: str, cause: str) -> None:
        """``cause``: ``connect``, ``rate_limited`` or ``should_retry``."""

    def upstream_answer_rejected(self, reason: str) -> None:
        """An answer was not taken: ``reason`` is its
        :class:`~imagegate_server.errors.AnswerFault` value (``UPSTREAM_...``)."""


class AttemptSpan(Protocol):
    """The span of one HTTP attempt (traces observe; they never steer)."""

    def headers(self) -> dict[str, str]:
        """Trace context to send with the attempt (W3C ``traceparent``)."""

    def answered(self, status: int, request_id: str | None) -> None:
        """The upstream answered with ``status`` (and its ``x-request-id``)."""

    def failed(self, cause: str) -> None:
        """The attempt failed without an answer, or its answer broke off: ``connect_error``,
        ``timeout``, ``reset``, ``protocol_error``, ``stream_error`` or ``cancelled``."""

    def end(self) -> None:
        """The attempt is over (its answer read or abandoned); called once."""


class UpstreamTracer(Protocol):
    """Starts a span per HTTP attempt (:mod:`imagegate_server.tracing` implements it)."""

    def attempt(
        self, operation: str, model: str, url: str, resend_count: int, upstream: str, kind: str
    ) -> AttemptSpan:
        """``operation``: ``generation``, ``edit`` or ``variation``; ``url``: what is
        POSTed to; ``resend_count``: 0 for the first attempt to this upstream, 1 for
        its first retry...; ``upstream``: the upstream's name; ``kind``: ``openai``,
        ``azure`` or ``compatible``."""


class Unobserved:
    """An :class:`UpstreamObserver` that records nothing."""

    def upstream_request(
        self, upstream: str, model: str, status: int | str, seconds: float
    ) -> None:
        pass

    def upstream_retry(self, upstream: str, cause: str) -> None:
        pass

    def upstream_answer_rejected(self, reason: str) -> None:
        pass


class _NoSpan:
    def headers(self) -> dict[str, str]:
        return {}

    def answered(self, status: int, request_id: str | None) -> None:
        pass

    def failed(self, cause: str) -> None:
        pass

    def end(self) -> None:
        pass


_NO_SPAN = _NoSpan()


class Untraced:
    """An :class:`UpstreamTracer` whose spans record nothing."""

    def attempt(
        self, operation: str, model: str, url: str, resend_count: int, upstream: str, kind: str
    ) -> AttemptSpan:
        return _NO_SPAN
