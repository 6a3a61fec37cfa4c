"""Admitting a call: authenticate its caller, judge its parameters against the
caller's policy, storage and limits, receive its uploads (an upload takes its
concurrency slot first, and must send its parameters in time), and settle its cost
however the call ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from imagegate_server.errors import LimitRefused
from imagegate_server.gateway.edge.answering import Admitted
from imagegate_server.gateway.edge.callers import ANONYMOUS, Authenticator, Caller
from imagegate_server.gateway.edge.guard import Context
from imagegate_server.gateway.edge.messages import (
    no_chunks,
    receive_files,
    unary_parameters,
    upload_stream,
)
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.tenancy import Tenancy
from imagegate_server.gateway.edge.wire import Rpc
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.gateway.requests.draft import Draft, PreparedRequest
from imagegate_server.gateway.requests.stream import UploadStream
from imagegate_server.gateway.requests.uploads import Upload
from imagegate_server.jobs.model import checked_request_id
from imagegate_server.limits import Ticket
from imagegate_server.metrics import Metrics
from imagegate_server.settings import Settings


class Admission:
    """Admits the calls of ImagesService: :meth:`admitted` yields a call ready to go
    upstream, and settles it when the block ends."""

    def __init__(
        self,
        settings: Settings,
        *,
        requests: RequestBuilder,
        callers: Authenticator,
        tenancy: Tenancy,
        storage: Storage,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._requests = requests
        self._callers = callers
        self._tenancy = tenancy
        self._storage = storage
        self._metrics = metrics

    @asynccontextmanager
    async def admitted(
        self, rpc: Rpc, request: Any, call: RpcCall, context: Context
    ) -> AsyncIterator[Admitted]:
        """Authenticate, judge and admit the call, receive its uploads; settle its
        cost however the block ends."""
        if not rpc.uploads:
            call.received()  # gRPC read it before the call began, whoever sent it
        caller = self._callers.authenticate(context)
        call.client = caller.client
        stream = (
            upload_stream(request, call, self._settings, self._metrics.stream_closed)
            if rpc.uploads
            else None
        )
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

    async def _received(
        self, context: Context, stream: UploadStream | None, draft: Draft
    ) -> PreparedRequest:
        """The request with its uploads received and judged."""
        if stream is None:
            return await draft.finish(no_chunks())
        return await receive_files(context, stream, draft, self._settings.rejected_upload_read_s)

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
