"""Gateways that a test starts in its own process: their settings, and a factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from imagegate_server.gateway.server import Gateway
from imagegate_server.settings import Settings


def gateway_settings(api_key: str, base_url: str, **overrides: Any) -> Settings:
    """A gateway on 127.0.0.1:0 in front of ``base_url`` with ``api_key``: no .env file
    read, no shutdown grace; ``overrides`` are further Settings fields."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "openai_api_key": api_key,
        "openai_base_url": base_url,
        "shutdown_grace_s": 0,
        # The local result store's link port: any free one (gateways of other tests,
        # or of other checkouts on this machine, may run at once).
        "store_http_port": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# ``await start(**settings)``: a started gateway (see ``started_gateways``).
GatewayFactory = Callable[..., Awaitable[Gateway]]


@asynccontextmanager
async def started_gateways(
    api_key: str, base_url: str, **defaults: Any
) -> AsyncIterator[GatewayFactory]:
    """Yields ``start(**overrides)``, which starts a gateway on ``gateway_settings(
    api_key, base_url, **defaults, **overrides)`` (``openai_base_url`` may be among
    them); every gateway it started is stopped when the block ends."""
    running: list[Gateway] = []

    async def start(**overrides: Any) -> Gateway:
        values = {"openai_base_url": base_url, **defaults, **overrides}
        url = values.pop("openai_base_url")
        gateway = Gateway(gateway_settings(api_key, url, **values))
        await gateway.start()
        running.append(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in running:
            await gateway.stop(0)
