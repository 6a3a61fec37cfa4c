"""The edge's guard: a status for every ending, even when gRPC has ended the call first."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc

from imagegate_server.gateway.edge.guard import Guard, log_unsent_answers_as_info


class EndedCall:
    """The part of grpc.aio's ServicerContext the guard uses, for a call that gRPC core
    has already ended: sending a status fails the way core fails it."""

    def __init__(self) -> None:
        self.trailers: tuple[Any, ...] = ()

    def time_remaining(self) -> float:
        return 0.0

    def invocation_metadata(self) -> tuple[Any, ...]:
        return ()

    def set_trailing_metadata(self, trailers: tuple[Any, ...]) -> None:
        self.trailers = trailers

    async def abort(self, code: grpc.StatusCode, details: str, trailers: Any) -> None:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch"')


async def _past_deadline() -> None:
    raise TimeoutError


async def test_a_status_gRPC_can_no_longer_send_ends_the_call_as_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # When the caller's deadline passes in gRPC core at the moment the gateway's own
    # timer fires, gRPC has ended the call before the abort: gRPC logs an ERROR with
    # a traceback for a failed send from a servicer, but only DEBUG for a cancellation.
    caplog.set_level(logging.INFO)
    guard, context = Guard(upstream_timeout_s=300), EndedCall()
    call = guard.begin("CreateImage", context)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await guard.unary(call, context, _past_deadline())  # type: ignore[arg-type]
    (finished,) = [r for r in caplog.records if r.getMessage() == "rpc finished"]
    assert finished.levelname == "INFO"
    assert finished.code == "DEADLINE_EXCEEDED"  # type: ignore[attr-defined]


def test_grpcs_error_for_an_answer_it_could_not_send_is_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What gRPC logs when a caller ends a unary call before its answer is sent (seen
    # when a caller refuses a result over its receive limit): an ERROR and a traceback.
    log_unsent_answers_as_info()
    log_unsent_answers_as_info()  # once per process, however many gateways start
    core = logging.getLogger("grpc._cython.cygrpc")
    caplog.set_level(logging.INFO)
    try:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch"')
    except cygrpc.ExecuteBatchError:
        core.exception(
            "ExecuteBatchError raised in core by servicer method [%s]",
            "/imagegate.v1.ImagesService/CreateImage",
        )
        core.exception("Unexpected [%s] raised by servicer method [%s]", "ValueError", "/x/Y")
    unsent, other = caplog.records
    assert (unsent.levelname, unsent.exc_info) == ("INFO", None)
    assert unsent.getMessage() == (
        "the caller ended the call before its answer: [/imagegate.v1.ImagesService/CreateImage]"
    )
    assert other.levelname == "ERROR" and other.exc_info is not None  # only that one
    assert sum(isinstance(f, logging.Filter) for f in core.filters) == 1
