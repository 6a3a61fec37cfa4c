"""ImageJobsService: submit a job, get its Operation at once.

authenticate     the caller (as every RPC)
parameters       judged like the synchronous RPCs' (INVALID_ARGUMENT first)
policy           the caller's models, operations, n (PERMISSION_DENIED)
uploads          edits and variations stream their files exactly like
                 CreateImageEdit/CreateImageVariation; each file goes to the
                 result store (so that any replica can run the job), hashed
delivery         stored unless the parameters say DELIVERY_INLINE: the client
                 must be allowed to store, within its storage quota (edge/storage)
budget           the estimate reserved against the client's budgets now
queue            the job queued (or, for a known request id, the first submit's
                 job: its reservation and files given back)
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import jobs_pb2, params_pb2

from imagegate_server.gateway.edge.callers import ANONYMOUS, Authenticator, Caller
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.messages import malformed, receive_files, upload_stream
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.storage import Storage, store_client
from imagegate_server.gateway.edge.tenancy import Charge, Tenancy
from imagegate_server.gateway.edge.wire import Malformed, add_service
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.gateway.requests.stream import UploadStream
from imagegate_server.jobs.execution import wants_partials
from imagegate_server.jobs.fingerprint import field_digests, fingerprint
from imagegate_server.jobs.model import (
    JobKind,
    JobRecord,
    JobState,
    checked_request_id,
    new_job_id,
    now_ms,
)
from imagegate_server.jobs.operation_view import OperationView
from imagegate_server.jobs.payload import JobRequest, Reservation, StoredFile
from imagegate_server.jobs.service import Jobs
from imagegate_server.metrics import Metrics
from imagegate_server.models import Operation
from imagegate_server.settings import Settings
from imagegate_server.store import CallInfo, ResultStore
from imagegate_server.uninterrupted import to_its_end
from imagegate_server.upstream import UploadFile

SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["ImageJobsService"]
_OPERATIONS = {
    "SubmitImageJob": Operation.GENERATION,
    "SubmitImageEditJob": Operation.EDIT,
    "SubmitImageVariationJob": Operation.VARIATION,
}
_ROLES = {"image": params_pb2.FILE_ROLE_IMAGE, "mask": params_pb2.FILE_ROLE_MASK,
          "markup": params_pb2.FILE_ROLE_MARKUP}  # fmt: skip
_READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Submitted:
    """The first message's fields: parameters and request id."""

    parameters: Message
    request_id: str | None


class SubmitServicer:
    def __init__(
        self,
        jobs: Jobs,
        view: OperationView,
        *,
        callers: Authenticator,
        tenancy: Tenancy,
        storage: Storage,
        requests: RequestBuilder,
        results: ResultStore,
        settings: Settings,
        metrics: Metrics,
        guard: Guard,
    ) -> None:
        self._jobs = jobs
        self._view = view
        self._callers = callers
        self._tenancy = tenancy
        self._storage = storage
        self._requests = requests
        self._results = results
        self._settings = settings
        self._metrics = metrics
        self._guard = guard

    def register(self, server: Any) -> None:
        add_service(server, SERVICE, {name: self._behaviour(name) for name in _OPERATIONS})

    def _behaviour(self, name: str) -> Callable[..., Any]:
        rpc_metrics = self._metrics.rpc(name, SERVICE)
        uploads = name != "SubmitImageJob"

        async def submit(request: Any, context: Context) -> bytes:
            call = self._guard.begin(name, context, rpc_metrics)
            if not uploads:
                call.received()
            work = self._submit(name, request, uploads, call, context)
            answer = await self._guard.unary(call, context, work)
            call.sent()
            return answer

        return submit

    async def _submit(
        self, name: str, request: Any, uploads: bool, call: RpcCall, context: Context
    ) -> bytes:
        caller = self._callers.authenticate(context)
        call.client = caller.client
        stream = (
            upload_stream(request, call, self._settings, self._metrics.stream_closed)
            if uploads
            else None
        )
        submitted = await (_first_message(stream) if stream else _unary(request))
        operation = _OPERATIONS[name]
        disk = self._requests.disk_account(caller.client, caller.policy.max_spooled_bytes)
        draft = self._requests.start(
            operation,
            submitted.parameters,
            streaming=wants_partials(submitted.parameters),
            disk=disk,
        )
        call.model, call.requested_images = draft.model, draft.n
        try:
            self._tenancy.check(caller, draft)
            stored = await self._storage.check(caller, draft, default=params_pb2.DELIVERY_STORED)
            files: list[StoredFile] = []
            if stream is not None:
                draft.reserve_spool()
                read_s = self._settings.rejected_upload_read_s
                prepared = await receive_files(context, stream, draft, read_s)
                with prepared as images_request:
                    files = await self._keep_files(caller, draft.model, images_request.files)
        finally:
            draft.close()
        # To its end even if the caller goes away meanwhile: a job its store made keeps
        # its reservation and uploads (and runs; its request id's retry finds it), one
        # not made gives them back.
        queueing = asyncio.ensure_future(
            self._queue(caller, operation, submitted, draft, files, stored)
        )
        try:
            record = await to_its_end(queueing)
        except BaseException:
            if queueing.done() and (queueing.cancelled() or queueing.exception() is not None):
                await self._forget(files)
            raise
        call.request_id = record.request_id or call.request_id
        data: bytes = (await self._view.operation(record)).SerializeToString()
        return data

    async def _queue(
        self,
        caller: Caller,
        operation: Operation,
        submitted: Submitted,
        draft: Any,
        files: list[StoredFile],
        stored: bool,
    ) -> JobRecord:
        settings = self._settings
        digests = field_digests(
            f"job:{operation.value}",
            submitted.parameters,
            {(f.role, f.index): f.sha256 for f in files},
        )
        hold_s = settings.jobs_queue_timeout_s + settings.upstream_timeout_s
        charge: Charge = await self._tenancy.reserve(
            caller, draft, hold_s + settings.limit_hold_margin_s
        )
        ticket = charge.ticket
        now = now_ms()
        identity = (
            caller.client if caller.policy.stamp_identity and caller.client != ANONYMOUS else ""
        )
        job_request = JobRequest(
            parameters=submitted.parameters.SerializeToString(),
            files=tuple(files),
            stored=stored,
            reservation=Reservation(ticket.id, ticket.reserved_micros, ticket.accounted),
            fields=digests,
            identity=identity,
            traceparent=tracer.traceparent() if (tracer := self._jobs.runner.tracer) else "",
        )
        record = JobRecord(
            id=new_job_id(), client=caller.client, kind=JobKind.JOB, operation=operation.value,
            state=JobState.QUEUED, created_ms=now, updated_ms=now,
            expires_ms=now + round((hold_s + settings.jobs_retention_s) * 1000),
            model=draft.model, n=draft.n, request_id=submitted.request_id,
            fingerprint=fingerprint(digests), estimate_micros=charge.estimate_micros,
            request=job_request.encode(),
        )  # fmt: skip
        try:
            queued, new = await self._jobs.submit(record, digests, caller.policy.max_queued_jobs)
        except BaseException:
            await self._tenancy.settle_ticket(ticket, 0)
            raise
        if not new:  # the request id's first submit: its job, its reservation
            await self._tenancy.settle_ticket(ticket, 0)
            await self._forget(files)
        return queued

    async def _keep_files(self, caller: Caller, model: str, files: Any) -> list[StoredFile]:
        """Each uploaded file into the result store (for whichever replica runs the
        job), with its sha256 (for the request id's fingerprint)."""
        kept: list[StoredFile] = []
        images = 0
        hold = self._settings.jobs_queue_timeout_s + self._settings.jobs_retention_s
        call = CallInfo(store_client(caller.client), model)
        for file in files:
            assert isinstance(file, UploadFile)
            index = images if file.role == "image" else 0
            images += file.role == "image"
            digest = hashlib.sha256()
            source = file.open()

            async def chunks(source: Any = source, digest: Any = digest) -> AsyncIterator[bytes]:
                while data := source.read(_READ_BYTES):
                    digest.update(data)
                    yield data

            content_type = f"image/{file.format}" if file.format else "application/octet-stream"
            stored = await self._results.put(
                chunks(), content_type=content_type, call=call,
                retention=datetime.timedelta(seconds=hold),
            )  # fmt: skip
            kept.append(StoredFile(_ROLES[file.role], index, stored.key, stored.size,
                                   digest.hexdigest()))  # fmt: skip
        return kept

    async def _forget(self, files: list[StoredFile]) -> None:
        for file in files:
            try:
                await self._results.delete(file.key)
            except Exception:  # noqa: S112 (the store's sweeper deletes it at its expiry)
                continue


async def _unary(request: Any) -> Submitted:
    if isinstance(request, Malformed):
        raise malformed("request")
    return Submitted(request.parameters, checked_request_id(request.request_id))


async def _first_message(stream: UploadStream) -> Submitted:
    """The upload's first message (parameters, request id); chunks after it."""
    parameters = await stream.parameters()
    first: Any = stream.first
    request_id = checked_request_id(first.request_id)
    return Submitted(parameters, request_id)
