"""The routes under ``/_emulator/``: downloads of ``url`` answers, and the debug
endpoints tests and operators use (no auth: the emulator is for loopback use).

``GET /_emulator/images/{name}`` an image of a ``response_format=url`` answer (403
once expired, like OpenAI's signed URLs; 404 if it never existed);
``GET /_emulator/requests`` the journal; ``POST /_emulator/reset`` forget the journal and
``first=K`` counters; ``POST /_emulator/faults`` ``{"faults": "503;first=2"}`` replace
the default faults; ``GET /_emulator/health``.
"""

from __future__ import annotations

from aiohttp import web

from imagegate_server.emulator.errors import bad_request
from imagegate_server.emulator.faults import FaultInjector
from imagegate_server.emulator.responder import error_response
from imagegate_server.emulator.state import STATE
from imagegate_server.emulator.urls import IMAGE_PATH


async def image_file(request: web.Request) -> web.StreamResponse:
    stored = request.app[STATE].urls.get(request.match_info["name"])
    if stored is False:
        return web.Response(status=403, text="AuthenticationFailed: signed URL expired.")
    if stored is None or stored is True:
        return web.Response(status=404, text="BlobNotFound")
    return web.Response(body=stored.data, content_type=stored.content_type)


async def journal(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].journal.to_json())


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.journal.clear()
    state.faults.reset()
    return web.json_response({"ok": True})


async def set_faults(request: web.Request) -> web.Response:
    """Replace the default faults at runtime: body ``{"faults": "503;first=2"}``."""
    state = request.app[STATE]
    try:
        payload = await request.json()
        text = str(payload["faults"])
        FaultInjector.check(text)
    except (ValueError, KeyError, TypeError):
        return error_response(bad_request('Expected {"faults": "..."} in the documented syntax.'))
    state.default_faults = text
    return web.json_response({"ok": True, "faults": text})


async def health(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    app.router.add_get(IMAGE_PATH + "{name}", image_file)
    app.router.add_get("/_emulator/requests", journal)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_post("/_emulator/faults", set_faults)
    app.router.add_get("/_emulator/health", health)
