"""One RPC's bookkeeping: its request id, the upstream's, its deadline, its caller,
what it produced and cost, its log line, its gRPC metrics and its span.

Every call gets a request id (the caller's ``x-request-id`` when it is a short
token, else a fresh one), returned in trailing metadata and written to the
"rpc finished" log line, so a caller's report can be found in the logs. The
upstream's ``x-request-id`` is kept per call, because ``context.abort`` replaces
trailers set earlier: every ending, success or failure, sends both ids again.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from imagegate_server.gateway.edge.status import UPSTREAM_REQUEST_ID
from imagegate_server.metrics import RpcMetrics

log = logging.getLogger("imagegate_server.gateway.servicer")

REQUEST_ID = "x-request-id"
# Ids end up in logs and trailers: accept only short, plain tokens from callers.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")

Trailers = tuple[tuple[str, str | bytes], ...]
Metadata = Iterable[tuple[str, str | bytes]]


class CallSpan(Protocol):
    """A call's span (traces observe; they never steer)."""

    def end(self, code: str, call: RpcCall) -> None:
        """The call ended with status ``code``; ``call`` says what it produced."""


class RpcTracer(Protocol):
    """Starts the span of each call of one gRPC service
    (:mod:`imagegate_server.tracing` implements it)."""

    def begin(self, method: str, metadata: Metadata | None) -> CallSpan:
        """``method``: the RPC's name (``CreateImage``); ``metadata``: the caller's,
        whose ``traceparent`` the span continues."""


def _caller_request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID and isinstance(value, str) and _SANE_ID.fullmatch(value):
            return value
    return None


@dataclass
class RpcCall:
    rpc: str
    deadline: float
    """Absolute, in ``loop.time()``: the caller's deadline or the upstream timeout."""
    request_id: str
    metrics: RpcMetrics | None = None
    upstream_request_id: str | None = None
    upstream: str | None = None
    """The upstream that answered (or, for a failure, the last one tried)."""
    client: str | None = None
    """The authenticated caller, once known."""
    images: int = 0
    result_bytes: int | None = None
    """The size of a unary response: a caller whose receive limit is below it refuses
    it after gRPC sent it, which the gateway cannot see, so the log line says it."""
    cost_micros: int | None = None
    model: str | None = None
    """The model the call asks for, once its parameters are read."""
    requested_images: int | None = None
    """The call's ``n``, once its parameters are read."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    """Token usage of the result, when OpenAI reported it."""
    stored: bool = False
    """The call asked for its results in the result store (DELIVERY_STORED)."""
    span: CallSpan | None = None
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def begin(
        cls,
        rpc: str,
        deadline: float,
        context: grpc.aio.ServicerContext[Any, Any],
        metrics: RpcMetrics | None = None,
        tracer: RpcTracer | None = None,
    ) -> RpcCall:
        call = cls(rpc, deadline, _caller_request_id(context) or uuid.uuid4().hex, metrics)
        if metrics is not None:
            metrics.started()
        if tracer is not None:
            call.span = tracer.begin(rpc, context.invocation_metadata())
        return call

    def upstream_answered(self, request_id: str | None) -> None:
        if request_id:
            self.upstream_request_id = request_id

    def received(self, messages: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.received(messages)

    def sent(self, messages: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.sent(messages)

    def trailers(self, base: Iterable[tuple[str, str | bytes]] = ()) -> Trailers:
        """``base`` plus this call's ids (each once)."""
        trailers = list(base)
        present = {key for key, _ in trailers}
        if REQUEST_ID not in present:
            trailers.append((REQUEST_ID, self.request_id))
        if self.upstream_request_id and UPSTREAM_REQUEST_ID not in present:
            trailers.append((UPSTREAM_REQUEST_ID, self.upstream_request_id))
        return tuple(trailers)

    def log_finished(self, code: str, reason: str = "") -> None:
        """The call's one log line and its handled metric: called once per ending."""
        seconds = time.monotonic() - self.started
        if self.metrics is not None:
            self.metrics.handled(code, seconds)
        if self.span is not None:
            self.span.end(code, self)
        extra: dict[str, object] = {
            "rpc": self.rpc,
            "code": code,
            "request_id": self.request_id,
            "duration_ms": round(seconds * 1000, 1),
        }
        if self.client is not None:
            extra["client"] = self.client
        if self.images:
            extra["images"] = self.images
        if self.result_bytes is not None:
            extra["result_bytes"] = self.result_bytes
        if self.stored:
            extra["delivery"] = "stored"
        if self.cost_micros is not None:
            # On a failed call too: a result the store could not keep was billed.
            extra["cost_usd"] = self.cost_micros / 1_000_000
        if self.upstream is not None:
            extra["upstream"] = self.upstream
        if self.upstream_request_id:
            extra["upstream_request_id"] = self.upstream_request_id
        if reason:
            extra["reason"] = reason
        log.info("rpc finished", extra=extra)
