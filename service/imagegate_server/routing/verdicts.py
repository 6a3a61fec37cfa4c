"""How a call's ending counts for its upstream's circuit breaker (against it, for
it, or not at all), and the cause a failover is counted under.

Errors about the upstream itself (5xx, 429, quota, authentication, no connection, a
broken or unusable answer) count against it; errors about the request (400, 403,
404, moderation) are an upstream answering and count for it; a caller that left or
a deadline that ran out says nothing about it.
"""

from __future__ import annotations

import asyncio

from imagegate_server.errors import (
    UpstreamError,
    UpstreamErrorKind,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegate_server.routing.breaker import CircuitBreaker, Permit

# The kinds of UpstreamError that are about the upstream itself.
_UPSTREAM_KINDS = frozenset(
    {
        UpstreamErrorKind.SERVER,
        UpstreamErrorKind.RATE_LIMITED,
        UpstreamErrorKind.QUOTA,
        UpstreamErrorKind.AUTHENTICATION,
    }
)


def judge(breaker: CircuitBreaker | None, permit: Permit, exc: BaseException) -> None:
    """Count a call's ending against its upstream's circuit, or for it."""
    if breaker is None:
        return
    if isinstance(exc, asyncio.CancelledError | GeneratorExit | UpstreamTimeout):
        # No verdict: the caller left, or its deadline (perhaps shorter than any
        # generation takes) ran out.
        breaker.release(permit)
    elif isinstance(exc, UpstreamError):
        if exc.kind in _UPSTREAM_KINDS:
            breaker.failed(permit)
        else:
            breaker.succeeded(permit)
    elif isinstance(exc, UpstreamFailure):
        breaker.failed(permit)  # no connection, a broken or unusable answer
    else:
        breaker.succeeded(permit)  # the caller's own handling failed: the upstream answered


def failover_cause(failure: UpstreamFailure) -> str:
    """``connect``, ``rate_limited`` or ``server_error`` (the metric's label)."""
    if isinstance(failure, UpstreamUnreachable):
        return "connect"
    if isinstance(failure, UpstreamError) and failure.status == 429:
        return "rate_limited"
    return "server_error"
