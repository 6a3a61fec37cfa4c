"""ImagesService: every RPC is the same path through the stages, shaped by its table row.

    edge (here)      authenticate the caller; an upload takes its concurrency slot
                     and must send its parameters message in time
    requests         -> a draft request: parameters mapped and judged
    edge (tenancy)   the caller's policy, then its limits and budgets (admitted or not)
    requests         the uploads received and judged -> a validated ImagesRequest
    routing          -> an upstream: the whole answer, or its events as they arrive
    mapping          -> the result (priced), or slices then the result
                     (edge/answering); with DELIVERY_STORED (edge/storage: may the
                     caller store, within its quota) each final image goes to the
                     result store as it is decoded and the result carries links
    edge (tenancy)   settle the call's cost
    edge (once)      a call with a request_id is kept: it outlives its caller, and
                     a retry collects its result rather than running again
    edge (guard)     the status, trailers, log line and metrics of every ending

Unary-result RPCs return the whole result; stream RPCs relay OpenAI's events as
they arrive (partial images before the final ones) or, when OpenAI cannot stream
the call, slice the finished images.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.errors import (
    ImagegateError,
    LimitRefused,
    OperationNotFound,
    ResultTooLarge,
)
from imagegate_server.gateway.edge.answering import Admitted, Answering, StreamItem
from imagegate_server.gateway.edge.callers import ANONYMOUS, Authenticator, Caller
from imagegate_server.gateway.edge.detached import Detached, Holder, detached_items
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.messages import Request, each_parsed, no_chunks, unary_parameters
from imagegate_server.gateway.edge.once import Duplicate, KeepRun, OnceCalls, collected_items
from imagegate_server.gateway.edge.rpc import RpcCall, RpcTracer
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.tenancy import Tenancy
from imagegate_server.gateway.edge.wire import UPLOAD_ACCEPTED, Rpc
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.mapping.results import ImageSlice
from imagegate_server.gateway.mapping.serialized import chunk_response_bytes, unary_response_bytes
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.gateway.requests.draft import Draft, PreparedRequest
from imagegate_server.gateway.requests.stream import UploadStream
from imagegate_server.gateway.requests.uploads import Upload
from imagegate_server.jobs.model import checked_request_id
from imagegate_server.limits import Ticket
from imagegate_server.metrics import Metrics
from imagegate_server.pricing import PriceTable
from imagegate_server.routing import Router
from imagegate_server.settings import Settings

Chunks = AsyncIterator[params_pb2.FileChunk]


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
        self._requests = requests
        self._callers = callers
        self._tenancy = tenancy
        self._storage = storage
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
        async with self._admitted(rpc, request, call, context) as admitted:
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
            async with self._admitted(rpc, request, call, context) as admitted:
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

    @asynccontextmanager
    async def _admitted(
        self, rpc: Rpc, request: Any, call: RpcCall, context: Context
    ) -> AsyncIterator[Admitted]:
        """Authenticate, judge and admit the call, receive its uploads; settle its
        cost however the block ends."""
        if not rpc.uploads:
            call.received()  # gRPC read it before the call began, whoever sent it
        caller = self._callers.authenticate(context)
        call.client = caller.client
        stream = self._upload_stream(request, call) if rpc.uploads else None
        slot: Ticket | None = None
        if stream is not None:
            # An upload's parameters come in its first message, which may be slow or
            # never come: its slot is taken now, so that waiting counts as a call.
            with self._refusals_counted(caller):
                slot = await self._tenancy.hold_slot(caller)
        try:
            parameters = await stream.parameters() if stream else unary_parameters(request)
            first = stream.first if stream else request
            request_id = checked_request_id(getattr(first, "request_id", ""))
            disk = self._requests.disk_account(caller.client, caller.policy.max_spooled_bytes)
            draft = self._requests.start(
                rpc.operation, parameters, streaming=rpc.streams, disk=disk
            )
        except BaseException:
            await self._tenancy.release(slot)
            raise
        call.model, call.requested_images = draft.model, draft.n
        try:
            self._tenancy.check(caller, draft)
            if caller.policy.stamp_identity and caller.client != ANONYMOUS:
                draft.stamp_identity(caller.client)
            with self._refusals_counted(caller):
                stored = call.stored = await self._storage.check(caller, draft)
                draft.reserve_spool()
                charge = await self._tenancy.admit(caller, draft, slot)
        except BaseException:
            draft.close()
            await self._tenancy.release(slot)
            raise
        error: BaseException | None = None
        with self._metrics.in_flight(caller.client):
            try:
                prepared = await self._received(context, stream, draft)
                self._count_upload(rpc, prepared.upload)
                with prepared as images_request:
                    yield Admitted(
                        caller, draft, images_request, charge, stored, call.deadline, request_id
                    )
            except BaseException as exc:
                error = exc
                raise
            finally:
                draft.close()  # however the call ended (again, if the request closed it)
                amount = await self._tenancy.settle(charge, error)
                call.upstream = charge.upstream
                self._metrics.spend(caller.client, draft.model, amount, charge.upstream)
                self._metrics.set_limiter_state(self._tenancy.limiter_state)

    def _upload_stream(self, request: AsyncIterator[Request], call: RpcCall) -> UploadStream:
        settings = self._settings
        return UploadStream(
            each_parsed(request, call),
            first_message_s=settings.first_message_timeout_s,
            idle_s=settings.upload_idle_timeout_s,
            on_closed=self._metrics.stream_closed,
        )

    async def _received(
        self, context: Context, stream: UploadStream | None, draft: Draft
    ) -> PreparedRequest:
        """The request with its uploads received and judged."""
        if stream is None:
            return await draft.finish(no_chunks())
        # "Parameters, credentials and limits accepted: send the files." A client that
        # waits for these headers sends no upload bytes into a refusal, and reads the
        # refusal while it writes nothing (grpc's asyncio client misreports a status
        # that arrives during its writes: grpc/grpc#36066). The header tells these
        # headers from a refusal's trailers-only answer.
        await context.send_initial_metadata(((UPLOAD_ACCEPTED, "accepted"),))
        try:
            return await draft.finish(stream.chunks())
        except ImagegateError:
            # Refused mid-upload: answer once the caller has sent what it declared.
            await stream.discard(draft.owed_bytes, self._settings.rejected_upload_read_s)
            raise

    @contextmanager
    def _refusals_counted(self, caller: Caller) -> Iterator[None]:
        try:
            yield
        except LimitRefused as refused:
            self._metrics.limit_refused(refused.limit, caller.client)
            raise
        finally:
            self._metrics.set_limiter_state(self._tenancy.limiter_state)

    def _count_upload(self, rpc: Rpc, upload: Upload) -> None:
        operation = rpc.operation.value
        self._metrics.upload_bytes(operation, upload.total)
        self._metrics.upload_spooled(upload.spooled_bytes)


def _left(call: RpcCall) -> float:
    """What remains of the call's deadline, in seconds."""
    return max(0.0, call.deadline - asyncio.get_running_loop().time())
