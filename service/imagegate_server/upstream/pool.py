"""The connections to the upstream: httpx transports in shards of
:data:`POOL_SHARD_CONNECTIONS`, used round-robin.

httpcore's pool scans all of its connections on every request event, so its cost
grows with the square of the pool size (encode/httpcore#1035): thousands of
long-held calls in one pool burn the CPU in that scan. Pools of this size, used
round-robin, keep the scan short while the total stays ``max_connections``.
"""

from __future__ import annotations

import itertools

import httpx

POOL_SHARD_CONNECTIONS = 256


class Pool:
    """``max_connections`` in all, split evenly over as few shards as fit."""

    def __init__(self, max_connections: int, *, http2: bool) -> None:
        shards = max(1, -(-max_connections // POOL_SHARD_CONNECTIONS))
        per_shard = -(-max_connections // shards)
        # Transports, not httpx.AsyncClient: a client adds auth flows, redirect
        # handling, cookie extraction and URL merging to every request, none of which
        # an API call needs, at a measurable share of the gateway's CPU per call.
        self._transports = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=per_shard,
                    max_keepalive_connections=per_shard,
                    keepalive_expiry=30.0,
                ),
                http2=http2,
            )
            for _ in range(shards)
        ]
        self._next = itertools.cycle(self._transports)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send on the next shard; the response's body is not read yet."""
        response = await next(self._next).handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()
