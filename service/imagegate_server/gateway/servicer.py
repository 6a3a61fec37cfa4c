"""ImagesService: each RPC builds a validated call, runs it upstream, maps the answer.

Unary-result RPCs return the whole result; *Stream RPCs relay OpenAI's SSE events
as they arrive (partial images before the final ones) or, when OpenAI cannot
stream the call, slice the finished images. Errors become statuses in one place
(:meth:`ImagesServicer._abort`), so no exception text reaches a caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, results_pb2

from imagegate_server.errors import (
    ImagegateError,
    InvalidRequest,
    ResultTooLarge,
    UpstreamError,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from imagegate_server.gateway.calls import CallBuilder, UpstreamCall
from imagegate_server.gateway.results import apply_metadata, decode_image, images_result, slices
from imagegate_server.gateway.rpccall import RpcCall
from imagegate_server.gateway.status import INTERNAL, RpcFailure, failure
from imagegate_server.gateway.wire import Malformed
from imagegate_server.settings import Settings
from imagegate_server.upstream.client import Upstream
from imagegate_server.upstream.sse import error_status

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Message)
Event = results_pb2.ImageChunk | results_pb2.ImagesResult  # slices, then the result
Context = grpc.aio.ServicerContext[Any, Any]


class ImagesServicer(images_service_pb2_grpc.ImagesServiceServicer):
    """Register with :func:`imagegate_server.gateway.wire.add_images_service`, whose
    parsing hands malformed request messages in as :class:`Malformed`."""

    def __init__(
        self, upstream: Upstream, settings: Settings, *, refuse_retired: bool = False
    ) -> None:
        self._upstream = upstream
        self._settings = settings
        self._calls = CallBuilder(settings, refuse_retired=refuse_retired)

    # -- RPCs -----------------------------------------------------------------

    async def CreateImage(
        self, request: pb.CreateImageRequest | Malformed, context: Context
    ) -> pb.CreateImageResponse:
        async def run(rpc: RpcCall) -> pb.CreateImageResponse:
            call = self._calls.generation(_parsed(request).parameters, streaming=False)
            return await self._unary(call, rpc, context, pb.CreateImageResponse)

        return await self._guard(context, "CreateImage", run)

    async def CreateImageStream(
        self, request: pb.CreateImageStreamRequest | Malformed, context: Context
    ) -> AsyncIterator[pb.CreateImageStreamResponse]:
        async def events(rpc: RpcCall) -> AsyncGenerator[Event]:
            call = self._calls.generation(_parsed(request).parameters, streaming=True)
            async for event in self._stream(call, rpc):
                yield event

        async for event in self._guard_stream(context, "CreateImageStream", events):
            yield _event(pb.CreateImageStreamResponse, event)

    async def CreateImageEdit(
        self,
        request_iterator: AsyncIterator[pb.CreateImageEditRequest | Malformed],
        context: Context,
    ) -> pb.CreateImageEditResponse:
        async def run(rpc: RpcCall) -> pb.CreateImageEditResponse:
            call = await self._calls.edit(_each_parsed(request_iterator), streaming=False)
            return await self._unary(call, rpc, context, pb.CreateImageEditResponse)

        return await self._guard(context, "CreateImageEdit", run)

    async def CreateImageEditStream(
        self,
        request_iterator: AsyncIterator[pb.CreateImageEditStreamRequest | Malformed],
        context: Context,
    ) -> AsyncIterator[pb.CreateImageEditStreamResponse]:
        async def events(rpc: RpcCall) -> AsyncGenerator[Event]:
            call = await self._calls.edit(_each_parsed(request_iterator), streaming=True)
            async for event in self._stream(call, rpc):
                yield event

        async for event in self._guard_stream(context, "CreateImageEditStream", events):
            yield _event(pb.CreateImageEditStreamResponse, event)

    async def CreateImageVariation(
        self,
        request_iterator: AsyncIterator[pb.CreateImageVariationRequest | Malformed],
        context: Context,
    ) -> pb.CreateImageVariationResponse:
        async def run(rpc: RpcCall) -> pb.CreateImageVariationResponse:
            call = await self._calls.variation(_each_parsed(request_iterator))
            return await self._unary(call, rpc, context, pb.CreateImageVariationResponse)

        return await self._guard(context, "CreateImageVariation", run)

    async def CreateImageVariationStream(
        self,
        request_iterator: AsyncIterator[pb.CreateImageVariationStreamRequest | Malformed],
        context: Context,
    ) -> AsyncIterator[pb.CreateImageVariationStreamResponse]:
        async def events(rpc: RpcCall) -> AsyncGenerator[Event]:
            call = await self._calls.variation(_each_parsed(request_iterator))
            async for event in self._stream(call, rpc):
                yield event

        name = "CreateImageVariationStream"
        async for event in self._guard_stream(context, name, events):
            yield _event(pb.CreateImageVariationStreamResponse, event)

    # -- running calls ----------------------------------------------------------

    async def _unary(
        self,
        call: UpstreamCall,
        rpc: RpcCall,
        context: Context,
        response_type: type[UnaryResponse],
    ) -> UnaryResponse:
        try:
            reply = await self._upstream.call(call.path, call.body(stream=False), rpc.deadline)
        finally:
            call.close()
        rpc.upstream_answered(reply.request_id)
        result, images = images_result(reply.payload, reply.request_id)
        for image, data in zip(result.images, images, strict=True):
            if data is not None:
                image.data = data
        response = response_type(result=result)
        # The limit applies to the message gRPC sends, i.e. the response around the result.
        size = response.ByteSize()
        if size > self._settings.max_send_message_bytes:
            stream_rpc = _STREAM_RPC_OF[response_type]
            raise ResultTooLarge(
                f"the result is {size} bytes, over this gateway's unary limit of "
                f"{self._settings.max_send_message_bytes} bytes; use {stream_rpc}, "
                "which delivers images in slices"
            )
        return response

    async def _stream(self, call: UpstreamCall, rpc: RpcCall) -> AsyncIterator[Event]:
        chunk_bytes = self._settings.result_chunk_bytes
        try:
            if not call.streamable:
                reply = await self._upstream.call(call.path, call.body(stream=False), rpc.deadline)
                rpc.upstream_answered(reply.request_id)
                result, images = images_result(reply.payload, reply.request_id)
                for index, data in enumerate(images):
                    if data is not None:  # None: a URL result, carried in the result
                        for chunk in slices(data, chunk_bytes, index):
                            yield chunk
                yield result
                return
            body = call.body(stream=True)
            async with self._upstream.stream(call.path, body, rpc.deadline) as sse:
                rpc.upstream_answered(sse.request_id)
                result = results_pb2.ImagesResult()
                finished = 0
                async for event in sse.events:
                    payload = _event_payload(event.data, sse.request_id)
                    kind = str(payload.get("type") or event.event)
                    if kind == "error" or "error" in payload:
                        raise _stream_error(payload, sse.request_id)
                    data = decode_image(payload.get("b64_json"), sse.request_id)
                    if kind.endswith(".partial_image"):
                        partial = payload.get("partial_image_index")
                        partial = partial if isinstance(partial, int) and partial >= 0 else 0
                        for chunk in slices(data, chunk_bytes, finished, partial):
                            yield chunk
                    elif kind.endswith(".completed"):
                        created = payload.get("created_at")
                        if not result.created and isinstance(created, int):
                            result.created = created
                        apply_metadata(result, payload)
                        result.images.add()
                        for chunk in slices(data, chunk_bytes, finished):
                            yield chunk
                        finished += 1
                if not finished:
                    raise UpstreamProtocolError("the upstream stream ended without an image")
                yield result
        finally:
            call.close()

    # -- errors, deadlines, logs --------------------------------------------------

    def _begin(self, rpc: str, context: Context) -> RpcCall:
        limit = self._settings.upstream_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit, remaining)
        return RpcCall.begin(rpc, asyncio.get_running_loop().time() + limit, context)

    async def _guard(
        self, context: Context, name: str, run: Callable[[RpcCall], Awaitable[T]]
    ) -> T:
        rpc = self._begin(name, context)
        try:
            async with asyncio.timeout_at(rpc.deadline):
                answer = await run(rpc)
        except BaseException as exc:
            await self._abort(context, rpc, exc)
            raise
        context.set_trailing_metadata(rpc.trailers())
        rpc.log_finished("OK")
        return answer

    async def _guard_stream(
        self, context: Context, name: str, events: Callable[[RpcCall], AsyncGenerator[Event]]
    ) -> AsyncIterator[Event]:
        rpc = self._begin(name, context)
        try:
            async with aclosing(events(rpc)) as pending:
                while True:
                    # The deadline bounds the work between events (upload, upstream,
                    # relaying), not the yield: cancelling inside gRPC's send would
                    # break the call instead of ending it with a status.
                    async with asyncio.timeout_at(rpc.deadline):
                        event = await anext(pending, None)
                    if event is None:
                        break
                    yield event
        except BaseException as exc:
            await self._abort(context, rpc, exc)
            raise
        context.set_trailing_metadata(rpc.trailers())
        rpc.log_finished("OK")

    async def _abort(self, context: Context, rpc: RpcCall, exc: BaseException) -> None:
        """Abort the call with the status for ``exc``; return for exceptions to re-raise."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            rpc.log_finished("CANCELLED")
            return
        if isinstance(exc, grpc.aio.AbortError):
            return
        if isinstance(exc, TimeoutError):
            exc = UpstreamTimeout("the deadline passed before the upstream answered")
        if isinstance(exc, UpstreamFailure):
            rpc.upstream_answered(exc.request_id)
        if isinstance(exc, ImagegateError):
            answer: RpcFailure = failure(exc)
        else:
            # Our bug: the details go to the log, never to the caller.
            log.error("unexpected error in %s", rpc.rpc, exc_info=exc)
            answer = INTERNAL
        rpc.log_finished(answer.code.name, reason=answer.message)
        await context.abort(answer.code, answer.message, rpc.trailers(answer.trailing_metadata))


StreamResponse = TypeVar(
    "StreamResponse",
    pb.CreateImageStreamResponse,
    pb.CreateImageEditStreamResponse,
    pb.CreateImageVariationStreamResponse,
)
UnaryResponse = TypeVar(
    "UnaryResponse",
    pb.CreateImageResponse,
    pb.CreateImageEditResponse,
    pb.CreateImageVariationResponse,
)
_STREAM_RPC_OF: dict[type[Message], str] = {
    pb.CreateImageResponse: "CreateImageStream",
    pb.CreateImageEditResponse: "CreateImageEditStream",
    pb.CreateImageVariationResponse: "CreateImageVariationStream",
}


def _malformed(where: str) -> InvalidRequest:
    return InvalidRequest.one(
        where, "not a valid protobuf message of this RPC's request type", "malformed_message"
    )


def _parsed(request: M | Malformed) -> M:
    if isinstance(request, Malformed):
        raise _malformed("request")
    return request


async def _each_parsed(requests: AsyncIterator[M | Malformed]) -> AsyncIterator[M]:
    position = 0
    async for request in requests:
        if isinstance(request, Malformed):
            raise _malformed(f"message[{position}]")
        yield request
        position += 1


def _event(response: type[StreamResponse], event: Event) -> StreamResponse:
    if isinstance(event, results_pb2.ImageChunk):
        return response(image_chunk=event)
    return response(result=event)


def _event_payload(data: str, request_id: str | None) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamProtocolError("the upstream sent an invalid event", request_id) from None
    if not isinstance(payload, dict):
        raise UpstreamProtocolError("the upstream sent an invalid event", request_id)
    return payload


def _stream_error(payload: dict[str, Any], request_id: str | None) -> UpstreamError:
    error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
    assert isinstance(error, dict)
    error_type = _text(error.get("type"))
    if error_type == "error":  # the event's own type, in the flat event shape
        error_type = None
    code = _text(error.get("code"))
    return UpstreamError(
        error_status(error_type, code),
        str(error.get("message") or "the upstream stream failed"),
        error_type=error_type,
        code=code,
        param=_text(error.get("param")),
        request_id=request_id,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
