"""The standard ``google.longrunning.Operations`` service, over the caller's jobs.

Every method authenticates like ImagesService and sees only the caller's own
operations: an unknown name and another client's are the same NOT_FOUND. Names
are ``operations/<uuid>`` (INVALID_ARGUMENT naming ``name`` otherwise).

    GetOperation      the operation as it is now
    ListOperations    the caller's operations, newest first; ``name`` is empty or
                      ``operations``; ``filter`` is empty, ``done = true|false`` or
                      ``state = QUEUED|RUNNING|SUCCEEDED|FAILED|CANCELLED``
    WaitOperation     blocks until the operation is done, or its ``timeout`` (the
                      shorter of it, the call's deadline and ``jobs_wait_max_s``)
    CancelOperation   best effort, as AIP-151 says: a queued job is cancelled at
                      once; a running one's upstream request is aborted by the
                      replica running it; a finished one stays as it is
    DeleteOperation   forgets a finished operation (and its stored images) now
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from imagegate_server.errors import InvalidRequest, JobCancelled
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.status import status_bytes
from imagegate_server.gateway.edge.wire import Malformed, add_service
from imagegate_server.jobs.model import JobState, job_id_of
from imagegate_server.jobs.operation_view import OperationView
from imagegate_server.jobs.service import Jobs
from imagegate_server.metrics import Metrics
from imagegate_server.settings import Settings

SERVICE = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
_FILTER = re.compile(r"\s*(done|state)\s*=\s*\"?([A-Za-z_]+)\"?\s*")
_DEFAULT_PAGE = 50
_WAIT_MARGIN_S = 0.05
"""A wait ends this much before the call's deadline, so its answer can still be sent."""


class OperationsServicer:
    def __init__(
        self,
        jobs: Jobs,
        view: OperationView,
        *,
        callers: Authenticator,
        settings: Settings,
        metrics: Metrics,
        guard: Guard,
    ) -> None:
        self._jobs = jobs
        self._view = view
        self._callers = callers
        self._settings = settings
        self._metrics = metrics
        self._guard = guard

    def register(self, server: Any) -> None:
        methods = {
            "GetOperation": self._get,
            "ListOperations": self._list,
            "WaitOperation": self._wait,
            "CancelOperation": self._cancel,
            "DeleteOperation": self._delete,
        }
        add_service(
            server, SERVICE, {name: self._behaviour(name, m) for name, m in methods.items()}
        )

    def _behaviour(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        rpc_metrics = self._metrics.rpc(name, SERVICE)

        async def serve(request: Any, context: Context) -> Any:
            call = self._guard.begin(name, context, rpc_metrics)
            call.received()
            malformed = isinstance(request, Malformed)
            work = _refuse() if malformed else method(request, context, call)
            answer = await self._guard.unary(call, context, work)
            call.sent()
            return answer

        return serve

    def _client(self, context: Context, call: RpcCall) -> str:
        caller = self._callers.authenticate(context)
        call.client = caller.client
        return caller.client

    async def _get(self, request: Any, context: Context, call: RpcCall) -> Any:
        client = self._client(context, call)
        record = await self._jobs.get(client, job_id_of(request.name))
        return await self._view.operation(record)

    async def _list(self, request: Any, context: Context, call: RpcCall) -> Any:
        client = self._client(context, call)
        if request.name not in ("", "operations"):
            raise InvalidRequest.one("name", "must be empty or 'operations' (the collection)")
        if request.page_size < 0:
            raise InvalidRequest.one("page_size", "must be >= 0")
        page_size = min(request.page_size or _DEFAULT_PAGE, self._settings.jobs_max_page_size)
        token = request.page_token
        if token and not re.fullmatch(r"\d{1,16}\.[0-9a-f-]{36}", token):
            raise InvalidRequest.one("page_token", "is not a token this service returned")
        done, state = _filter(request.filter)
        page = await self._jobs.page(client, page_size, token, state)
        response = operations_pb2.ListOperationsResponse(next_page_token=page.next_token)
        for record in page.records:
            if done is None or record.state.done == done:
                response.operations.append(await self._view.operation(record))
        return response

    async def _wait(self, request: Any, context: Context, call: RpcCall) -> Any:
        client = self._client(context, call)
        job_id = job_id_of(request.name)
        limit = self._settings.jobs_wait_max_s
        if request.HasField("timeout"):
            asked = request.timeout.ToTimedelta().total_seconds()
            if asked < 0:
                raise InvalidRequest.one("timeout", "must not be negative")
            limit = min(limit, asked)
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit, max(0.0, remaining - _WAIT_MARGIN_S))
        record = await self._jobs.wait(client, job_id, limit)
        return await self._view.operation(record)

    async def _cancel(self, request: Any, context: Context, call: RpcCall) -> Any:
        client = self._client(context, call)
        await self._jobs.cancel(client, job_id_of(request.name), status_bytes(JobCancelled()))
        return empty_pb2.Empty()

    async def _delete(self, request: Any, context: Context, call: RpcCall) -> Any:
        client = self._client(context, call)
        await self._jobs.delete(client, job_id_of(request.name))
        return empty_pb2.Empty()


async def _refuse() -> Any:
    raise InvalidRequest.one(
        "request", "not a valid protobuf message of this RPC's request type", "malformed_message"
    )


def _filter(text: str) -> tuple[bool | None, JobState | None]:
    """(done, state) of a ListOperations filter (AIP-160's ``field = value``, one term)."""
    if not text.strip():
        return None, None
    match = _FILTER.fullmatch(text)
    if match is not None:
        field, value = match.group(1), match.group(2).lower()
        if field == "done" and value in ("true", "false"):
            return value == "true", None
        if field == "state":
            for state in JobState:
                if state.value == value:
                    return None, state
    raise InvalidRequest.one(
        "filter",
        "must be empty, 'done = true', 'done = false' or 'state = QUEUED' (RUNNING, "
        "SUCCEEDED, FAILED, CANCELLED)",
    )
