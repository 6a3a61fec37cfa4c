"""ImagesService: every RPC is the same path through the stages, shaped by its table row.

    edge (admission) authenticate the caller; an upload takes its concurrency slot
                     and must send its parameters message in time
    requests         -> a draft request: parameters mapped and judged
    edge (tenancy)   the caller's policy, then its limits and budgets (admitted or not)
    requests         the uploads received and judged -> a validated ImagesRequest
    routing          -> an upstream: the whole answer, or its events as they arrive
    mapping          -> the result (priced), or slices then the result
                     (edge/answering); with DELIVERY_STORED (edge/storage: may the
                     caller store, within its quota) each final image goes to the
                     result store as it is decoded and the result carries links
    edge (admission) settle the call's cost (edge/tenancy)
    edge (once)      a call with a request_id is kept: it outlives its caller, and
                     a retry collects its result rather than running again
    edge (guard)     the status, trailers, log line and metrics of every ending

Here: each RPC's path (unary or stream, detached from its caller when it may be
kept, a retry collecting its first call's result); admitting a call and settling
it is edge/admission. Unary-result RPCs return the whole result; stream RPCs relay
OpenAI's events as they arrive (partial images before the final ones) or, when
OpenAI cannot stream the call, slice the finished images.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import results_pb2

from imagegate_server.errors import OperationNotFound, ResultTooLarge
from imagegate_server.gateway.edge.admission import Admission
from imagegate_server.gateway.edge.answering import Admitted, Answering, StreamItem
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.detached import Detached, Holder, detached_items
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.once import Duplicate, KeepRun, OnceCalls, collected_items
from imagegate_server.gateway.edge.rpc import RpcCall, RpcTracer
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.tenancy import Tenancy
from imagegate_server.gateway.edge.wire import Rpc
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.mapping.results import ImageSlice
from imagegate_server.gateway.mapping.serialized import chunk_response_bytes, unary_response_bytes
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.metrics import Metrics
from imagegate_server.pricing import PriceTable
from imagegate_server.routing import Router
from imagegate_server.settings import Settings


class ImagesServicer:
    """Serves every RPC of ImagesService; register with
    ``add_images_service(servicer.behaviour, server)``."""

    def __init__(
        self,
        router: Router,
        settings: Settings,
        *,
        requests: RequestBuilder,
        callers: Authenticator,
        tenancy: Tenancy,
        storage: Storage,
        prices: PriceTable,
        metrics: Metrics,
        tracer: RpcTracer | None = None,
        once: OnceCalls | None = None,
    ) -> None:
        """``once``: keeps calls that carry a request id (None: request ids are
        checked, but calls run as if they had none)."""
        self._once = once
        self._settings = settings
        self._admission = Admission(
            settings,
            requests=requests,
            callers=callers,
            tenancy=tenancy,
            storage=storage,
            metrics=metrics,
        )
        self._answering = Answering(
            router, settings, storage, Pricer(router.prices_for, prices, metrics), metrics
        )
        self._metrics = metrics
        self._guard = Guard(settings.upstream_timeout_s, tracer)

    def behaviour(self, rpc: Rpc) -> Callable[..., Any]:
        """The gRPC handler function of ``rpc``."""
        if rpc.streams:

            async def serve_stream(
                request: Any, context: Context
            ) -> AsyncIterator[Message | bytes]:
                call = self._guard.begin(rpc.name, context, self._metrics.rpc(rpc.name))
                items: AsyncGenerator[StreamItem]
                if self._may_keep(rpc, request):
                    items = detached_items(partial(self._stream_items, rpc, request, call, context))
                else:
                    items = self._stream_items(rpc, request, call, context, None)
                async for item in self._guard.stream(call, context, items):
                    if isinstance(item, ImageSlice):
                        yield chunk_response_bytes(rpc.response, item)
                    else:
                        yield rpc.response(result=item)
                    call.sent()

            return serve_stream

        async def serve_unary(request: Any, context: Context) -> bytes:
            call = self._guard.begin(rpc.name, context, self._metrics.rpc(rpc.name))
            work: Awaitable[bytes]
            if self._may_keep(rpc, request):
                work = Detached(partial(self._unary, rpc, request, call, context)).result()
            else:
                work = self._unary(rpc, request, call, context, None)
            response = await self._guard.unary(call, context, work)
            call.sent()
            return response

        return serve_unary

    def _may_keep(self, rpc: Rpc, request: Any) -> bool:
        """Whether the call may carry a request id (an upload says so only in its first
        message), so its work runs detached from its caller."""
        if self._once is None:
            return False
        return rpc.uploads or bool(getattr(request, "request_id", ""))

    async def _unary(
        self, rpc: Rpc, request: Any, call: RpcCall, context: Context, holder: Holder | None
    ) -> bytes:
        """The serialized response (gRPC sends bytes as they are, see ``wire``): each
        image is copied once, from the decoded answer into what gRPC sends."""
        try:
            return await self._unary_once(rpc, request, call, context, holder)
        except Duplicate as found:
            once = self._once_calls
            try:
                result, images = await once.collect(found.record.client, found.record, _left(call))
            except OperationNotFound:
                # The first call failed before OpenAI billed it and was forgotten: this
                # one runs instead (a unary request can be read again).
                return await self._unary_once(rpc, request, call, context, holder)
            call.images = len(result.images)
            return self._checked_size(rpc, call, unary_response_bytes(rpc.response, result, images))

    async def _unary_once(
        self, rpc: Rpc, request: Any, call: RpcCall, context: Context, holder: Holder | None
    ) -> bytes:
        async with self._admission.admitted(rpc, request, call, context) as admitted:
            run = await self._run(rpc, admitted, holder, call)
            admitted.charge.upstream_started = True
            try:
                await run.sending()
                data = await self._answering.unary(rpc, admitted, call)
            except BaseException as error:
                await run.failed(error)
                raise
        return self._checked_size(rpc, call, data)

    def _checked_size(self, rpc: Rpc, call: RpcCall, data: bytes) -> bytes:
        call.result_bytes = len(data)
        # The limit applies to the message gRPC sends, i.e. the response around the result.
        limit = self._settings.max_send_message_bytes
        if len(data) > limit:
            raise ResultTooLarge(
                f"the result is {len(data)} bytes, over this gateway's unary limit of {limit} "
                f"bytes; use {rpc.stream_alternative}, which delivers images in slices"
            )
        return data

    async def _stream_items(
        self, rpc: Rpc, request: Any, call: RpcCall, context: Context, holder: Holder | None
    ) -> AsyncGenerator[StreamItem]:
        try:
            async with self._admission.admitted(rpc, request, call, context) as admitted:
                run = await self._run(rpc, admitted, holder, call)
                admitted.charge.upstream_started = True
                try:
                    await run.sending()
                    async for item in self._answering.stream(rpc, admitted, call):
                        yield item
                except BaseException as error:
                    await run.failed(error)
                    raise
        except Duplicate as found:
            chunk_bytes = self._settings.result_chunk_bytes
            collected = collected_items(self._once_calls, found.record, _left(call), chunk_bytes)
            async for piece in collected:
                if isinstance(piece, results_pb2.ImagesResult):
                    call.images = len(piece.images)
                yield piece

    @property
    def _once_calls(self) -> OnceCalls:
        assert self._once is not None  # only calls it keeps get here
        return self._once

    async def _run(
        self, rpc: Rpc, admitted: Admitted, holder: Holder | None, call: RpcCall
    ) -> KeepRun:
        """The call's run, kept under its request id if it has one (then its upstream
        deadline is the upstream timeout, whatever its caller's); raises Duplicate
        (collect the first call) or AlreadyExists."""
        if self._once is None:
            run = KeepRun(None, None, call.deadline)
        else:
            run = await self._once.run(
                holder, admitted.caller.client, admitted.request_id, rpc.operation,
                admitted.draft, admitted.request, admitted.charge.estimate_micros, call.deadline,
            )  # fmt: skip
        admitted.run, admitted.deadline = run, run.deadline
        return run


def _left(call: RpcCall) -> float:
    """What remains of the call's deadline, in seconds."""
    return max(0.0, call.deadline - asyncio.get_running_loop().time())
