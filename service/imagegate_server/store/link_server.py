"""The local store's link port: ``GET /o/<key>?expires=..&signature=..`` and nothing
else.

A link that is forged, altered, expired, or anything that is not a link (another
path, another method) gets 403 with no body: one answer for every failure, so the
port tells a prober nothing. A valid link to an object that is gone (swept,
deleted) gets 404. Files are served by aiohttp's ``FileResponse`` (sendfile,
``Range``, conditional requests), with the object's own content type, and headers
that keep a browser from treating an image (an SVG, say) as a page of this origin.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable

from aiohttp import web

from imagegate_server.errors import StartupError
from imagegate_server.store.local import LocalBackend
from imagegate_server.store.local_files import read_attributes
from imagegate_server.store.observe import StoreObserver, Unobserved
from imagegate_server.store.signing import PATH_PREFIX, LinkSigner

log = logging.getLogger(__name__)

_SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "Referrer-Policy": "no-referrer",
}


class LinkServer:
    """``port = await server.start(host, port)``; ``await server.stop()``."""

    def __init__(
        self,
        backend: LocalBackend,
        signer: LinkSigner,
        *,
        observer: StoreObserver | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._backend = backend
        self._signer = signer
        self._observer: StoreObserver = observer if observer is not None else Unobserved()
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        app.on_response_prepare.append(self._prepared)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)  # no URLs in logs
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        except OSError:
            await runner.cleanup()
            raise StartupError(
                f"store links: cannot listen on {host}:{port}: the address is in use or "
                "not available here (IMAGEGATE_STORE_HTTP_PORT)"
            ) from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("store link port", extra={"address": f"{host}:{self.port}"})
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _refused()
        raw_path = request.rel_url.raw_path  # undecoded: a key needs no escapes
        expires = request.rel_url.query.getall("expires", [])
        signature = request.rel_url.query.getall("signature", [])
        if not raw_path.startswith(PATH_PREFIX) or len(expires) != 1 or len(signature) != 1:
            return _refused()
        key = raw_path[len(PATH_PREFIX) :]
        now = self._clock()
        if not self._signer.verify(key, expires[0], signature[0], now):
            return _refused()
        path = self._backend.path(key)
        if path is None:
            return _refused()
        try:
            attributes = await asyncio.to_thread(read_attributes, path)
        except OSError:
            return web.Response(status=404)  # swept or deleted since the link was made
        remaining = max(int(expires[0]) - int(now.timestamp()), 0)
        headers = {
            **_SAFE_HEADERS,
            "Content-Type": attributes.content_type,
            "Cache-Control": f"private, max-age={remaining}",
        }
        return web.FileResponse(path, headers=headers)

    async def _prepared(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.popall("Server", None)
        self._observer.link_request(response.status)


def _refused() -> web.Response:
    return web.Response(status=403)
