"""The limits gRPC core cannot enforce: connections per peer address, and a deadline
for a connection's first call.

Once a second (sooner for short deadlines) the guard lists its server's connections
(:mod:`.channelz`) and closes (:mod:`.sockets`):

- ``no_call``: connections that have not started a single call this long after they
  appeared. A gRPC client whose connection is closed this way reconnects by itself
  at its next call.
- ``per_address``: past an address's cap, its newest connections that carry no call
  at that moment. A connection with a call in flight is never closed here: the cap
  then holds once the call ends.

Why after the fact, rather than refusing at accept: grpcio gives Python no hook
between the kernel's accept and gRPC's handshake (no "adopt this descriptor"), and
an accept front of our own would have to relay every byte of every call through the
event loop and give gRPC the front's address as every caller's. What the guard
cannot prevent is bounded by gRPC core at accept time: the process-wide cap keeps
half the open-file limit free whatever an address does between two sweeps.

The sweep runs in a thread: under a flood it reads thousands of channelz nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from imagegate_server.gateway.connections import channelz, sockets
from imagegate_server.gateway.connections.limits import ConnectionLimits
from imagegate_server.metrics import Metrics

log = logging.getLogger(__name__)

# How long one sweep may spend asking gRPC core about single connections (each
# ~100 us): bounds the guard's CPU under a flood; the rest waits for the next sweep.
_LOOKUP_BUDGET_S = 0.25
NO_CALL = "no_call"
PER_ADDRESS = "per_address"


@dataclass(slots=True)
class _Seen:
    address: str
    port: int
    since: float
    called: bool = False


class ConnectionGuard:
    """Watches one server's port; ``start()`` once it serves, ``await stop()``."""

    def __init__(
        self, port_label: str, server_id: int, port: int, limits: ConnectionLimits, metrics: Metrics
    ) -> None:
        self.label = port_label
        self._server_id = server_id
        self._port = port
        self._limits = limits
        self._metrics = metrics
        self._seen: dict[int, _Seen] = {}
        self._full = False
        self._task: asyncio.Task[None] | None = None
        self.interval_s = max(0.05, min(1.0, limits.first_call_timeout_s / 4))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._metrics.connections_open(self.label, 0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:  # a bug here must not end the guard for good
                log.exception("connection sweep failed", extra={"port": self._port})

    def sweep(self) -> None:
        """Close what the limits say, once; records the open connections."""
        now = time.monotonic()
        listed = channelz.connections(self._server_id)
        if listed is None:
            return
        # A connection's age counts from the first sweep that saw it: never more.
        seen = {c.socket_id: self._seen.get(c.socket_id) or _Seen(c.address, c.port, now)
                for c in listed}  # fmt: skip
        self._seen = seen
        self._metrics.connections_open(self.label, len(seen))
        self._note_full(len(seen))
        budget_end = time.monotonic() + _LOOKUP_BUDGET_S
        closing: dict[int, str] = {}
        self._past_first_call(now, closing, budget_end)
        self._past_address_cap(closing, budget_end)
        if closing:
            self._close(closing)

    def _past_first_call(self, now: float, closing: dict[int, str], budget_end: float) -> None:
        deadline = self._limits.first_call_timeout_s
        for socket_id, seen in self._seen.items():
            if seen.called or now - seen.since < deadline:
                continue
            if time.monotonic() > budget_end:
                return
            streams = channelz.streams(socket_id)
            if streams is None:
                continue
            if streams.started:
                seen.called = True  # never asked again
            else:
                closing[socket_id] = NO_CALL

    def _past_address_cap(self, closing: dict[int, str], budget_end: float) -> None:
        by_address: dict[str, list[int]] = defaultdict(list)
        for socket_id, seen in self._seen.items():
            if socket_id not in closing:
                by_address[seen.address].append(socket_id)
        for ids in by_address.values():
            excess = len(ids) - self._limits.max_per_address
            for socket_id in sorted(ids, reverse=True):  # newest first
                if excess <= 0 or time.monotonic() > budget_end:
                    break
                streams = channelz.streams(socket_id)
                if streams is not None and streams.in_flight == 0:
                    closing[socket_id] = PER_ADDRESS
                    excess -= 1

    def _close(self, closing: dict[int, str]) -> None:
        by_reason: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for socket_id, reason in closing.items():
            seen = self._seen[socket_id]
            by_reason[reason].append((seen.address, seen.port))
        closed: dict[str, int] = {}
        for reason, peers in by_reason.items():
            count = sockets.shut_down(self._port, peers)
            if count:
                closed[reason] = count
                self._metrics.connections_closed(self.label, reason, count)
        if closed:
            over = sorted({a for a, _ in by_reason.get(PER_ADDRESS, [])})
            log.info(
                "closed connections",
                extra={"port": self._port, **closed, "addresses_over_cap": over[:3]},
            )

    def _note_full(self, count: int) -> None:
        """One line when the port reaches its cap (gRPC then closes new connections
        as they arrive, silently) and one when it is below it again."""
        full = count >= self._limits.max_connections
        if full != self._full:
            self._full = full
            message = (
                "connections at the cap: new ones are closed"
                if full
                else ("connections below the cap again")
            )
            log.warning(message, extra={"port": self._port, "cap": self._limits.max_connections})


class ConnectionGuards:
    """The guards of a gateway's ports: ``watch`` each server, ``start()`` once they
    serve, ``await stop()`` when the drain starts."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._guards: list[ConnectionGuard] = []

    def watch(
        self, port_label: str, server_id: int | None, port: int, limits: ConnectionLimits
    ) -> None:
        """``server_id``: the server's channelz id (see ``listening.new_server``)."""
        self._metrics.connections_limit(port_label, limits.max_connections)
        problem = (
            "gRPC's channelz shows no such server" if server_id is None
            else None if sockets.available()
            else "this system does not show sockets in /proc"
        )  # fmt: skip
        if server_id is None or problem is not None:
            log.warning(
                "connection limits per address and first-call deadlines are off",
                extra={"port": port, "reason": problem},
            )
            return
        self._guards.append(ConnectionGuard(port_label, server_id, port, limits, self._metrics))

    def start(self) -> None:
        for guard in self._guards:
            guard.start()

    async def stop(self) -> None:
        for guard in self._guards:
            await guard.stop()
        self._guards = []
