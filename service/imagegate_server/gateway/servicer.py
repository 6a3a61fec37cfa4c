"""ImagesService: each RPC builds a validated call, runs it upstream, maps the answer.

Unary-result RPCs return the whole result; *Stream RPCs relay OpenAI's SSE events
as they arrive (partial images before the final ones) or, when OpenAI cannot
stream the call, slice the finished images. Errors become statuses in one place
(:meth:`ImagesServicer._guard`), so no exception text reaches a caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, results_pb2

from imagegate_server.errors import (
    ImagegateError,
    ResultTooLarge,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from imagegate_server.gateway.calls import CallBuilder, UpstreamCall
from imagegate_server.gateway.results import apply_metadata, decode_image, images_result, slices
from imagegate_server.gateway.status import INTERNAL, UPSTREAM_REQUEST_ID, RpcFailure, failure
from imagegate_server.settings import Settings
from imagegate_server.upstream.client import Upstream

log = logging.getLogger(__name__)

T = TypeVar("T")
Event = results_pb2.ImageChunk | results_pb2.ImagesResult  # slices, then the result


class ImagesServicer(images_service_pb2_grpc.ImagesServiceServicer):
    def __init__(self, upstream: Upstream, settings: Settings) -> None:
        self._upstream = upstream
        self._settings = settings
        self._calls = CallBuilder(settings)

    # -- RPCs -----------------------------------------------------------------

    async def CreateImage(
        self, request: pb.CreateImageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateImageResponse:
        async def run(deadline: float) -> pb.CreateImageResponse:
            call = self._calls.generation(request.parameters, streaming=False)
            result = await self._unary(call, deadline, context, "CreateImageStream")
            return pb.CreateImageResponse(result=result)

        return await self._guard(context, "CreateImage", run)

    async def CreateImageStream(
        self, request: pb.CreateImageStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CreateImageStreamResponse]:
        async def events(deadline: float) -> AsyncIterator[Event]:
            call = self._calls.generation(request.parameters, streaming=True)
            async for event in self._stream(call, deadline, context):
                yield event

        async for event in self._guard_stream(context, "CreateImageStream", events):
            yield _event(pb.CreateImageStreamResponse, event)

    async def CreateImageEdit(
        self,
        request_iterator: AsyncIterator[pb.CreateImageEditRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.CreateImageEditResponse:
        async def run(deadline: float) -> pb.CreateImageEditResponse:
            call = await self._calls.edit(request_iterator, streaming=False)
            result = await self._unary(call, deadline, context, "CreateImageEditStream")
            return pb.CreateImageEditResponse(result=result)

        return await self._guard(context, "CreateImageEdit", run)

    async def CreateImageEditStream(
        self,
        request_iterator: AsyncIterator[pb.CreateImageEditStreamRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.CreateImageEditStreamResponse]:
        async def events(deadline: float) -> AsyncIterator[Event]:
            call = await self._calls.edit(request_iterator, streaming=True)
            async for event in self._stream(call, deadline, context):
                yield event

        async for event in self._guard_stream(context, "CreateImageEditStream", events):
            yield _event(pb.CreateImageEditStreamResponse, event)

    async def CreateImageVariation(
        self,
        request_iterator: AsyncIterator[pb.CreateImageVariationRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.CreateImageVariationResponse:
        async def run(deadline: float) -> pb.CreateImageVariationResponse:
            call = await self._calls.variation(request_iterator)
            result = await self._unary(call, deadline, context, "CreateImageVariationStream")
            return pb.CreateImageVariationResponse(result=result)

        return await self._guard(context, "CreateImageVariation", run)

    async def CreateImageVariationStream(
        self,
        request_iterator: AsyncIterator[pb.CreateImageVariationStreamRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.CreateImageVariationStreamResponse]:
        async def events(deadline: float) -> AsyncIterator[Event]:
            call = await self._calls.variation(request_iterator)
            async for event in self._stream(call, deadline, context):
                yield event

        name = "CreateImageVariationStream"
        async for event in self._guard_stream(context, name, events):
            yield _event(pb.CreateImageVariationStreamResponse, event)

    # -- running calls ----------------------------------------------------------

    async def _unary(
        self,
        call: UpstreamCall,
        deadline: float,
        context: grpc.aio.ServicerContext[Any, Any],
        stream_rpc: str,
    ) -> results_pb2.ImagesResult:
        try:
            reply = await self._upstream.call(call.path, call.body(stream=False), deadline)
        finally:
            call.close()
        _echo_request_id(context, reply.request_id)
        result, images = images_result(reply.payload, reply.request_id)
        for image, data in zip(result.images, images, strict=True):
            if data is not None:
                image.data = data
        size = result.ByteSize()
        if size > self._settings.max_send_message_bytes:
            raise ResultTooLarge(
                f"the result is {size} bytes, over this gateway's unary limit of "
                f"{self._settings.max_send_message_bytes} bytes; use {stream_rpc}, "
                "which delivers images in slices"
            )
        return result

    async def _stream(
        self, call: UpstreamCall, deadline: float, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Event]:
        chunk_bytes = self._settings.result_chunk_bytes
        try:
            if not call.streamable:
                reply = await self._upstream.call(call.path, call.body(stream=False), deadline)
                _echo_request_id(context, reply.request_id)
                result, images = images_result(reply.payload, reply.request_id)
                for index, data in enumerate(images):
                    if data is not None:  # None: a URL result, carried in the result
                        for chunk in slices(data, chunk_bytes, index):
                            yield chunk
                yield result
                return
            async with self._upstream.stream(call.path, call.body(stream=True), deadline) as sse:
                _echo_request_id(context, sse.request_id)
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

    def _deadline(self, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        limit = self._settings.upstream_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit, remaining)
        return asyncio.get_running_loop().time() + limit

    async def _guard(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: str,
        run: Callable[[float], Awaitable[T]],
    ) -> T:
        started = time.monotonic()
        deadline = self._deadline(context)
        try:
            async with asyncio.timeout_at(deadline):
                answer = await run(deadline)
        except BaseException as exc:
            await self._abort(context, rpc, started, exc)
            raise
        _log_call(rpc, "OK", started)
        return answer

    async def _guard_stream(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: str,
        events: Callable[[float], AsyncIterator[Event]],
    ) -> AsyncIterator[Event]:
        started = time.monotonic()
        deadline = self._deadline(context)
        try:
            # No asyncio.timeout here: it would cancel the task while suspended in a
            # yield, inside gRPC's send. The upstream client bounds every attempt by
            # the deadline instead, and gRPC itself ends calls whose deadline passed.
            async for event in events(deadline):
                yield event
        except BaseException as exc:
            await self._abort(context, rpc, started, exc)
            raise
        _log_call(rpc, "OK", started)

    async def _abort(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: str,
        started: float,
        exc: BaseException,
    ) -> None:
        """Abort the call with the status for ``exc``; return for exceptions to re-raise."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            _log_call(rpc, "CANCELLED", started)
            return
        if isinstance(exc, grpc.aio.AbortError):
            return
        if isinstance(exc, TimeoutError):
            exc = UpstreamTimeout("the deadline passed before the upstream answered")
        if isinstance(exc, ImagegateError):
            answer: RpcFailure = failure(exc)
        else:
            # Our bug: the details go to the log, never to the caller.
            log.error("unexpected error in %s", rpc, exc_info=exc)
            answer = INTERNAL
        _log_call(rpc, answer.code.name, started, reason=answer.message)
        await context.abort(answer.code, answer.message, answer.trailing_metadata)


StreamResponse = TypeVar(
    "StreamResponse",
    pb.CreateImageStreamResponse,
    pb.CreateImageEditStreamResponse,
    pb.CreateImageVariationStreamResponse,
)


def _event(response: type[StreamResponse], event: Event) -> StreamResponse:
    if isinstance(event, results_pb2.ImageChunk):
        return response(image_chunk=event)
    return response(result=event)


def _echo_request_id(context: grpc.aio.ServicerContext[Any, Any], request_id: str | None) -> None:
    if request_id:
        context.set_trailing_metadata(((UPSTREAM_REQUEST_ID, request_id),))


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
    error_type = error.get("type") if isinstance(error.get("type"), str) else None
    status = 400 if error_type == "invalid_request_error" else 500
    return UpstreamError(
        status,
        str(error.get("message") or "the upstream stream failed"),
        error_type=error_type,
        code=error.get("code") if isinstance(error.get("code"), str) else None,
        param=error.get("param") if isinstance(error.get("param"), str) else None,
        request_id=request_id,
    )


def _log_call(rpc: str, code: str, started: float, reason: str = "") -> None:
    log.info(
        "rpc finished",
        extra={
            "rpc": rpc,
            "code": code,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            **({"reason": reason} if reason else {}),
        },
    )
