"""ImagesService: every RPC is the same path through the stages, shaped by its table row.

    edge (here)      receive the parameters message, begin the call's bookkeeping
    requests         -> a validated ImagesRequest (uploads received and checked)
    upstream         -> the whole answer, or its events as they arrive
    mapping          -> the result, or slices then the result
    edge (guard)     the status, trailers and log line of every ending

Unary-result RPCs return the whole result; stream RPCs relay OpenAI's events as
they arrive (partial images before the final ones) or, when OpenAI cannot stream
the call, slice the finished images.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.errors import InvalidRequest, ResultTooLarge
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.wire import Malformed, Rpc
from imagegate_server.gateway.mapping.events import StreamItem, stream_items
from imagegate_server.gateway.mapping.results import unary_result
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.gateway.requests.uploads import receive
from imagegate_server.settings import Settings
from imagegate_server.upstream import ImagesAnswer, Upstream

Request = Message | Malformed
Chunks = AsyncIterator[params_pb2.FileChunk]


class ImagesServicer:
    """Serves every RPC of ImagesService; register with
    ``add_images_service(servicer.behaviour, server)``."""

    def __init__(
        self, upstream: Upstream, settings: Settings, *, refuse_retired: bool = False
    ) -> None:
        self._upstream = upstream
        self._settings = settings
        self._requests = RequestBuilder(settings, refuse_retired=refuse_retired)
        self._guard = Guard(settings.upstream_timeout_s)

    def behaviour(self, rpc: Rpc) -> Callable[..., Any]:
        """The gRPC handler function of ``rpc``."""
        if rpc.streams:

            async def serve_stream(request: Any, context: Context) -> AsyncIterator[Message]:
                call = self._guard.begin(rpc.name, context)
                items = self._stream_items(rpc, request, call)
                async for item in self._guard.stream(call, context, items):
                    if isinstance(item, results_pb2.ImageChunk):
                        yield rpc.response(image_chunk=item)
                    else:
                        yield rpc.response(result=item)

            return serve_stream

        async def serve_unary(request: Any, context: Context) -> Message:
            call = self._guard.begin(rpc.name, context)
            return await self._guard.unary(call, context, self._unary(rpc, request, call))

        return serve_unary

    async def _unary(self, rpc: Rpc, request: Any, call: RpcCall) -> Message:
        parameters, chunks = await _parameters(rpc, request)
        prepared = await self._requests.prepare(rpc.operation, parameters, chunks, streaming=False)
        with prepared as images_request:
            async with self._upstream.send(images_request, call.deadline) as reply:
                call.upstream_answered(reply.request_id)
                assert isinstance(reply, ImagesAnswer)  # a unary request does not stream
                result = unary_result(reply)
        response = rpc.response(result=result)
        # The limit applies to the message gRPC sends, i.e. the response around the result.
        size = response.ByteSize()
        limit = self._settings.max_send_message_bytes
        if size > limit:
            raise ResultTooLarge(
                f"the result is {size} bytes, over this gateway's unary limit of {limit} "
                f"bytes; use {rpc.stream_alternative}, which delivers images in slices"
            )
        return response

    async def _stream_items(
        self, rpc: Rpc, request: Any, call: RpcCall
    ) -> AsyncGenerator[StreamItem]:
        parameters, chunks = await _parameters(rpc, request)
        prepared = await self._requests.prepare(rpc.operation, parameters, chunks, streaming=True)
        with prepared as images_request:
            async with self._upstream.send(images_request, call.deadline) as reply:
                call.upstream_answered(reply.request_id)
                async for item in stream_items(reply, self._settings.result_chunk_bytes):
                    yield item


async def _parameters(rpc: Rpc, request: Any) -> tuple[Message, Chunks]:
    """The call's parameters message, and the file chunks that follow it (if any)."""
    if rpc.uploads:
        return await receive(_each_parsed(request))
    if isinstance(request, Malformed):
        raise _malformed("request")
    return request.parameters, _no_chunks()


async def _no_chunks() -> Chunks:
    return
    yield  # an async generator with nothing to give


async def _each_parsed(requests: AsyncIterator[Request]) -> AsyncIterator[Message]:
    position = 0
    async for request in requests:
        if isinstance(request, Malformed):
            raise _malformed(f"message[{position}]")
        yield request
        position += 1


def _malformed(where: str) -> InvalidRequest:
    return InvalidRequest.one(
        where, "not a valid protobuf message of this RPC's request type", "malformed_message"
    )
