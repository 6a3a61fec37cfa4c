"""The jobs stage's metrics: jobs by state, each client's queue, lease expiries.

The queue figures come from the job store (shared by every process and, with
Redis, every replica), read every :data:`~imagegate_server.jobs.service.OBSERVE_S`:
each process reports the same deployment-wide numbers, so dashboards take their
``max``, not their sum. Labels are bounded: ``client`` is an id of the clients
file (``other`` for the rest, summed), ``state`` and ``outcome`` are closed sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from imagegate_server.metrics.series import Children

_STATES = frozenset({"succeeded", "failed", "cancelled"})
_QUEUE_STATES = ("queued", "running")


class JobMetrics:
    """Created by :class:`~imagegate_server.metrics.Metrics` as ``metrics.jobs``."""

    def __init__(self, registry: CollectorRegistry, client_label: Callable[[str], str]) -> None:
        self._client = client_label
        self._ended = Children(
            Counter(
                "imagegate_jobs_ended_total",
                "Image jobs that ended, by final state (succeeded, failed, cancelled).",
                ("state",),
                registry=registry,
            ).labels
        )
        self._lease_expiries = Children(
            Counter(
                "imagegate_jobs_lease_expiries_total",
                "Jobs whose runner stopped renewing its lease (its process died): "
                "requeued (not sent yet) or aborted (sent: failed ABORTED, charged).",
                ("outcome",),
                registry=registry,
            ).labels
        )
        self._jobs = Gauge(
            "imagegate_jobs",
            "Image jobs queued or running now, per client (the store's figures: every "
            "process reports the whole deployment's).",
            ("client", "state"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._oldest = Gauge(
            "imagegate_jobs_oldest_queued_seconds",
            "Age of the client's oldest queued job (0: none queued).",
            ("client",),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._shown: set[str] = set()

    def job_ended(self, state: str) -> None:
        self._ended(state if state in _STATES else "failed").inc()

    def job_lease_expired(self, requeued: bool) -> None:
        self._lease_expiries("requeued" if requeued else "aborted").inc()

    def queues(
        self,
        figures: Mapping[str, tuple[int, int, float]],
    ) -> None:
        """Per client id: (queued, running, age of the oldest queued in seconds)."""
        summed: dict[str, list[float]] = {}
        for client, figure in figures.items():
            entry = summed.setdefault(self._client(client), [0.0, 0.0, 0.0])
            entry[0] += figure[0]
            entry[1] += figure[1]
            entry[2] = max(entry[2], figure[2])
        for label in self._shown - summed.keys():  # a client whose jobs are all done
            summed[label] = [0.0, 0.0, 0.0]
        for label, (queued, running, age) in summed.items():
            self._jobs.labels(label, "queued").set(queued)
            self._jobs.labels(label, "running").set(running)
            self._oldest.labels(label).set(age)
        self._shown = {label for label, entry in summed.items() if entry[0] or entry[1]}
