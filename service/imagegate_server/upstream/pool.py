"""The connections to the upstream.

HTTP/1.1 (the default) goes through :class:`AiohttpTransport`: one pool of
``max_connections``. HTTP/2 needs httpx's own transport (httpcore with h2), in
shards of :data:`POOL_SHARD_CONNECTIONS` used round-robin: httpcore's pool scans all
of its connections on every request event, so its cost grows with the square of
the pool size (encode/httpcore#1035), and short pools keep the scan short while the
total stays ``max_connections``.
"""

from __future__ import annotations

import itertools

import httpx

from imagegate_server.upstream.transport import AiohttpTransport

POOL_SHARD_CONNECTIONS = 256
_KEEPALIVE_EXPIRY_S = 30.0


class Pool:
    """``max_connections`` in all."""

    def __init__(self, max_connections: int, *, http2: bool) -> None:
        # Transports, not httpx.AsyncClient: a client adds auth flows, redirect
        # handling, cookie extraction and URL merging to every request, none of which
        # an API call needs, at a measurable share of the gateway's CPU per call.
        self._transports: list[httpx.AsyncBaseTransport]
        if not http2:
            self._transports = [AiohttpTransport(max_connections, _KEEPALIVE_EXPIRY_S)]
        else:
            shards = max(1, -(-max_connections // POOL_SHARD_CONNECTIONS))
            per_shard = -(-max_connections // shards)
            self._transports = [
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(
                        max_connections=per_shard,
                        max_keepalive_connections=per_shard,
                        keepalive_expiry=_KEEPALIVE_EXPIRY_S,
                    ),
                    http2=True,
                )
                for _ in range(shards)
            ]
        self._next = itertools.cycle(self._transports)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send on the next transport; the response's body is not read yet."""
        response = await next(self._next).handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()
