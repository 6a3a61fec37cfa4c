"""The emulator's aiohttp application: which route goes where.

The three Images operations run through :mod:`.pipeline` (which answers through
:mod:`.responder`, with bodies from :mod:`.answers`), on OpenAI's routes or, in Azure
mode, on Azure OpenAI's (:mod:`.azure`); everything under
``/_emulator/`` is in :mod:`.control`; any other path gets OpenAI's 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from imagegate_server.emulator import azure, control
from imagegate_server.emulator.errors import ApiError
from imagegate_server.emulator.pipeline import handle_images
from imagegate_server.emulator.responder import error_response
from imagegate_server.emulator.state import STATE, EmulatorState
from imagegate_server.models import Operation

_OPERATIONS = {
    "/v1/images/generations": Operation.GENERATION,
    "/v1/images/edits": Operation.EDIT,
    "/v1/images/variations": Operation.VARIATION,
}
# Large enough for JSON edits carrying 16 images as data: URLs.
_MAX_BODY_BYTES = 16 * 28 * 1024 * 1024


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=_MAX_BODY_BYTES)
    app[STATE] = state
    if state.config.azure:
        app.router.add_post(azure.DEPLOYMENT_ROUTE, _azure_route)
        app.router.add_post(azure.V1_ROUTE, _azure_route)
    else:
        for path, operation in _OPERATIONS.items():
            app.router.add_post(path, _operation_route(operation))
    control.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


def _operation_route(
    operation: Operation,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await handle_images(request, operation)

    return route


async def _azure_route(request: web.Request) -> web.StreamResponse:
    operation = azure.OPERATIONS.get(request.match_info["operation"])
    if operation is None:
        return await _not_found(request)
    return await handle_images(request, operation, request.match_info.get("deployment"))


async def _not_found(request: web.Request) -> web.Response:
    return error_response(ApiError(404, f"Invalid URL ({request.method} {request.path[:200]})"))
