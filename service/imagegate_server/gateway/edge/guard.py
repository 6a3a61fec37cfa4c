"""One RPC's life at the edge: its deadline, and every ending turned into a status.

The work of a call (receiving, validating, the upstream call, mapping) runs under
one absolute deadline: the caller's, or the configured upstream timeout if sooner.
Every way a call can end, success or any exception, is answered here, in one
place, so no exception text reaches a caller and every ending is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import grpc

from imagegate_server.errors import ImagegateError, UpstreamFailure, UpstreamTimeout
from imagegate_server.gateway.edge.rpc import RpcCall, RpcTracer
from imagegate_server.gateway.edge.status import INTERNAL, RpcFailure, failure
from imagegate_server.metrics import RpcMetrics

log = logging.getLogger("imagegate_server.gateway.servicer")

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


# gRPC's asyncio server sends a unary answer after the servicer returned; when the
# caller ends the call first (it went away, or refused a message over its receive
# limit), that send fails and gRPC logs an ERROR with a traceback. The guard cannot
# answer it (the call is over in core) and the call is logged already ("rpc
# finished", with result_bytes): the record becomes one INFO line without a traceback.
_CORE_LOGGER = "grpc._cython.cygrpc"
_UNSENT_ANSWER = "ExecuteBatchError raised in core by servicer method"


class _UnsentAnswer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(_UNSENT_ANSWER):
            method = record.getMessage().removeprefix(_UNSENT_ANSWER).strip()  # "[/svc/Rpc]"
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = f"the caller ended the call before its answer: {method}", ()
            record.exc_info, record.exc_text = None, None
        return True


def log_unsent_answers_as_info() -> None:
    """Install the filter above on gRPC's logger (once per process)."""
    core = logging.getLogger(_CORE_LOGGER)
    if not any(isinstance(f, _UnsentAnswer) for f in core.filters):
        core.addFilter(_UnsentAnswer())


class Guard:
    def __init__(self, upstream_timeout_s: float, tracer: RpcTracer | None = None) -> None:
        self._upstream_timeout_s = upstream_timeout_s
        self._tracer = tracer

    def begin(self, rpc: str, context: Context, metrics: RpcMetrics | None = None) -> RpcCall:
        limit = self._upstream_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit, remaining)
        deadline = asyncio.get_running_loop().time() + limit
        return RpcCall.begin(rpc, deadline, context, metrics, self._tracer)

    async def unary(self, call: RpcCall, context: Context, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(call.deadline):
                answer = await work
        except BaseException as exc:
            await self._abort(context, call, exc)
            raise
        context.set_trailing_metadata(call.trailers())
        call.log_finished("OK")
        return answer

    async def stream(
        self, call: RpcCall, context: Context, items: AsyncGenerator[T]
    ) -> AsyncIterator[T]:
        try:
            async with aclosing(items) as pending:
                while True:
                    # The deadline bounds the work between items (upload, upstream,
                    # relaying), not the yield: cancelling inside gRPC's send would
                    # break the call instead of ending it with a status.
                    async with asyncio.timeout_at(call.deadline):
                        item = await anext(pending, None)
                    if item is None:
                        break
                    yield item
        except BaseException as exc:
            await self._abort(context, call, exc)
            raise
        context.set_trailing_metadata(call.trailers())
        call.log_finished("OK")

    async def _abort(self, context: Context, call: RpcCall, exc: BaseException) -> None:
        """Abort the call with the status for ``exc``; return for exceptions to re-raise."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            # gRPC cancels the call at the caller's deadline too: say which it was.
            expired = context.time_remaining() == 0
            call.log_finished("DEADLINE_EXCEEDED" if expired else "CANCELLED")
            return
        if isinstance(exc, grpc.aio.AbortError):
            return
        if isinstance(exc, TimeoutError):
            exc = UpstreamTimeout("the deadline passed before the upstream answered")
        if isinstance(exc, UpstreamFailure):
            call.upstream_answered(exc.request_id)
        if isinstance(exc, ImagegateError):
            answer: RpcFailure = failure(exc)
        else:
            # Our bug: the details go to the log, never to the caller.
            log.error("unexpected error in %s", call.rpc, exc_info=exc)
            answer = INTERNAL
        call.log_finished(answer.code.name, reason=answer.message)
        try:
            await context.abort(
                answer.code, answer.message, call.trailers(answer.trailing_metadata)
            )
        except grpc.aio.AbortError:
            raise
        except Exception:
            # gRPC core ended the call first: the caller's deadline passed in core at
            # the moment our own timer fired (or the caller went away), so the status
            # cannot be sent and the caller already has its DEADLINE_EXCEEDED. gRPC
            # logs a failed send as an ERROR with a traceback, but not a cancellation.
            raise asyncio.CancelledError from None
