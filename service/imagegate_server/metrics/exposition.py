"""``GET /metrics`` on its own port, in the Prometheus text format.

An aiohttp server on the process's event loop (the gateway's, or the
supervisor's); the exposition itself runs in a thread, since collecting from a
multiprocess directory reads every worker's files. Only ``/metrics`` exists:
every other path is 404, so the port answers nothing but what it is for.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from imagegate_server.errors import StartupError

log = logging.getLogger(__name__)

PATH = "/metrics"


class MetricsEndpoint:
    """``port = await endpoint.start(host, port)``; ``await endpoint.stop()``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get(PATH, self._metrics)  # also answers HEAD
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise StartupError(
                f"metrics: cannot listen on {host}:{port}: the address is in use or not "
                "available here"
            ) from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("metrics endpoint", extra={"address": f"{host}:{self.port}", "path": PATH})
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
