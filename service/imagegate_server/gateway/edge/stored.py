"""StoredImagesService: a caller's own stored images, by reference, with fresh links.

Authorisation is ownership: an object belongs to the client in its key, and a
caller reaches only its own client's. Another client's object, one whose retention
ended, one deleted and one that never existed get the same NOT_FOUND, so the
service tells nobody which objects exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imagegate.v1 import results_pb2, stored_pb2

from imagegate_server.errors import InvalidRequest, StoredImageNotFound
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.wire import Malformed
from imagegate_server.gateway.mapping.stored import set_stored
from imagegate_server.metrics import RpcMetrics

MAX_REFERENCE = 256
"""Longer than any object reference the store makes."""


class StoredImagesServicer:
    def __init__(
        self,
        callers: Authenticator,
        storage: Storage,
        guard: Guard,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._callers = callers
        self._storage = storage
        self._guard = guard
        self._metrics = metrics

    def behaviours(self) -> dict[str, Callable[..., Any]]:
        return {"GetStoredImage": self.get_stored_image}

    async def get_stored_image(
        self, request: Any, context: Context
    ) -> stored_pb2.GetStoredImageResponse:
        call = self._guard.begin("GetStoredImage", context, self._metrics)
        call.received()
        response = await self._guard.unary(call, context, self._get(request, context, call))
        call.sent()
        return response

    async def _get(
        self, request: Any, context: Context, call: RpcCall
    ) -> stored_pb2.GetStoredImageResponse:
        caller = self._callers.authenticate(context)
        call.client = caller.client
        reference = _reference(request)
        found = await self._storage.relink(caller, reference)
        if found is None:
            raise StoredImageNotFound()
        image = results_pb2.GeneratedImage()
        set_stored(image, found)
        return stored_pb2.GetStoredImageResponse(image=image.stored)


def _reference(request: Any) -> str:
    if isinstance(request, Malformed):
        raise InvalidRequest.one(
            "request",
            "not a valid protobuf message of this RPC's request type",
            "malformed_message",
        )
    reference = str(request.object)
    if not reference:
        raise InvalidRequest.one("object", "required: a StoredImage.object", "missing")
    if len(reference) > MAX_REFERENCE:
        raise InvalidRequest.one(
            "object", f"longer than any object reference ({MAX_REFERENCE})", "out_of_range"
        )
    return reference
