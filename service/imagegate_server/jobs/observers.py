"""What watches the jobs stage: metrics (:class:`~imagegate_server.metrics.Metrics`)
and traces (:mod:`imagegate_server.tracing.job_spans`). They observe the runners and
the queues; they never steer them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class JobObserver(Protocol):
    """Metrics watch the runners (:class:`~imagegate_server.metrics.Metrics`)."""

    def job_ended(self, state: str) -> None: ...

    def job_lease_expired(self, requeued: bool) -> None: ...


class QueueObserver(Protocol):
    def queues(self, figures: Mapping[str, tuple[int, int, float]]) -> None: ...


class RunSpan(Protocol):
    def end(self, state: str) -> None: ...


class JobTracer(Protocol):
    """Traces watch the runs (:mod:`imagegate_server.tracing.job_spans`)."""

    def traceparent(self) -> str:
        """The current span's ``traceparent`` (at submit), or ''."""
        ...

    def run(
        self, job_id: str, client: str, operation: str, model: str, submitted: str
    ) -> RunSpan: ...
