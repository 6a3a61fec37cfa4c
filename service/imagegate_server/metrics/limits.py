"""What the limits stage records: refusals by limit and client, settled spend by
client, model and upstream, and the health of the limiter's store.

Labels are bounded: ``client`` is an id of the clients file (``other`` for the
rest, ``anonymous`` without one), ``limit`` and ``model`` are normalised by
:mod:`.labels`, ``state`` is one of :data:`LIMITER_STATES`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from imagegate_server.metrics import labels
from imagegate_server.metrics.labels import ClientLabels, UpstreamLabels
from imagegate_server.metrics.series import Children

LIMITER_STATES = ("up", "refusing", "unreachable")


class LimitRecording:
    """Part of :class:`~imagegate_server.metrics.Metrics`."""

    clients: ClientLabels
    upstreams: UpstreamLabels

    def __init__(self, reg: CollectorRegistry) -> None:
        self._refusals = Children(
            Counter(
                "imagegate_limit_refusals_total",
                "Calls refused by a per-client or gateway-wide limit, by limit and client.",
                ("limit", "client"),
                registry=reg,
            ).labels
        )
        self._spend = Children(
            Counter(
                "imagegate_spend_usd_total",
                "Spend computed from usage, in US dollars, by client, model and the "
                "upstream that answered.",
                ("client", "model", "upstream"),
                registry=reg,
            ).labels
        )
        self._limiter_up = Gauge(
            "imagegate_limiter_up",
            "1 when the limiter's store answers and accepts commands (always 1 for the "
            "in-memory limiter), else 0: see imagegate_limiter_state for which way it fails.",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        # One series per state, 1 for the current one (a state set): "answering but
        # refusing" (a wrong password, no permission, out of memory, a Cluster that is
        # down) needs a person, "unreachable" a network or a server.
        self._limiter_state = Gauge(
            "imagegate_limiter_state",
            "The limiter's store: 1 for its current state (up, refusing: it answers with "
            "errors, unreachable: no connection or no answer in time), 0 for the others.",
            ("state",),
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self.set_limiter_state("up")

    def known_clients(self, client_ids: Iterable[str]) -> None:
        """The ids of the clients file (call again on every reload); other ids are
        labelled ``other``, calls without a client ``anonymous``."""
        self.clients.known(client_ids)

    def limit_refused(self, limit: str, client: str | None) -> None:
        """A call was refused by ``limit`` (the limiter's name for it, e.g.
        ``images_per_minute``)."""
        self._refusals(labels.limit(limit), self.clients(client)).inc()

    def spend(self, client: str | None, model: str, micro_usd: int, upstream: str | None) -> None:
        """Settled cost of a call, in integer micro-dollars (exported in dollars), by
        the upstream that answered (or last failed; None: the call reached none)."""
        if micro_usd > 0:
            labelled = self._spend(
                self.clients(client), labels.model(model), self.upstreams(upstream)
            )
            labelled.inc(micro_usd / 1_000_000)

    def set_limiter_state(self, state: str) -> None:
        """``up``, ``refusing`` or ``unreachable`` (the limiter's ``state``)."""
        self._limiter_up.set(1 if state == "up" else 0)
        for each in LIMITER_STATES:
            self._limiter_state.labels(each).set(1 if each == state else 0)
