"""Errors -> gRPC status codes with ``google.rpc`` details: the status, message and
trailers a caller gets, or a job keeps, for every ending.

Upstream errors arrive classified by kind (the upstream knows HTTP; this does not).
What each error becomes: the gateway's own refusals in :mod:`.refusal_status`,
the upstream's failures in :mod:`.upstream_status`. The table (also in the
contract's service comment and the README):

    Unauthenticated                UNAUTHENTICATED     ErrorInfo(UNAUTHENTICATED)
    NotPermitted                   PERMISSION_DENIED   ErrorInfo(MODEL_NOT_ALLOWED, ...)
    ModelUnpriced                  FAILED_PRECONDITION ErrorInfo(MODEL_UNPRICED)
    LimitRefused                   RESOURCE_EXHAUSTED  QuotaFailure, RetryInfo(when it frees)
    LimiterUnavailable             UNAVAILABLE         ErrorInfo(LIMITER_UNAVAILABLE)
    InvalidRequest                 INVALID_ARGUMENT    BadRequest
    ModelRetired                   NOT_FOUND           ErrorInfo(MODEL_RETIRED: model,
                                                       shutdown_date, replacement)
    NoUpstream                     NOT_FOUND           ErrorInfo(NO_UPSTREAM: model)
    LimitExceeded                  RESOURCE_EXHAUSTED  QuotaFailure
    ResultTooLarge                 RESOURCE_EXHAUSTED
    StoreUnavailable               UNAVAILABLE         ErrorInfo(STORE_UNAVAILABLE)
    CallerStalled                  DEADLINE_EXCEEDED   ErrorInfo(FIRST_MESSAGE_TIMEOUT or
                                                       UPLOAD_STALLED: timeout_s)
    StoredImageNotFound            NOT_FOUND           ErrorInfo(STORED_IMAGE_NOT_FOUND)
    AlreadyExists                  ALREADY_EXISTS      BadRequest(the field that differs)
    OperationNotFound              NOT_FOUND
    OperationNotDone               FAILED_PRECONDITION
    JobCancelled                   CANCELLED
    JobAborted                     ABORTED             ErrorInfo(JOB_ABORTED)
    JobTimedOut                    DEADLINE_EXCEEDED   ErrorInfo(JOB_TIMED_OUT)
    upstream: invalid request      INVALID_ARGUMENT    ErrorInfo(reason=code|type),
      (OpenAI 400/413/422, other 4xx, content policy)  BadRequest(param)
    upstream: authentication (401) INTERNAL            ErrorInfo(UPSTREAM_AUTHENTICATION)
    upstream: permission (403)     PERMISSION_DENIED   ErrorInfo
    upstream: not found (404)      NOT_FOUND           ErrorInfo
    upstream: rate limited (429)   RESOURCE_EXHAUSTED  ErrorInfo, RetryInfo(retry-after)
    upstream: quota (429 insufficient_quota)
                                   RESOURCE_EXHAUSTED  ErrorInfo (no RetryInfo: waiting won't help)
    upstream: server (5xx)         UNAVAILABLE         ErrorInfo
    UpstreamTimeout                DEADLINE_EXCEEDED
    UpstreamProtocolError          UNAVAILABLE         ErrorInfo(UPSTREAM_ANSWER_TOO_LARGE,
      (an answer not taken)                            UPSTREAM_BAD_IMAGE, UPSTREAM_ENCODING,
                                                       UPSTREAM_NO_IMAGES, UPSTREAM_BAD_ANSWER)
    UpstreamUnreachable            UNAVAILABLE
    anything else                  INTERNAL            "internal error" (details: logs only)
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from imagegate_server.errors import ImagegateError, KeptFailure, UpstreamFailure
from imagegate_server.gateway.edge.refusal_status import REFUSAL_ANSWERS
from imagegate_server.gateway.edge.status_details import Answer, Answers
from imagegate_server.gateway.edge.upstream_status import UPSTREAM_ANSWERS

UPSTREAM_REQUEST_ID = "x-upstream-request-id"
DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RpcFailure:
    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _unavailable(error: ImagegateError) -> Answer:
    return grpc.StatusCode.UNAVAILABLE, None, []


# In order: the first entry whose type the error is an instance of answers it.
_ANSWERS: Answers = (
    *REFUSAL_ANSWERS,
    *UPSTREAM_ANSWERS,
    (ImagegateError, _unavailable),  # UpstreamUnreachable
)


def _status(error: ImagegateError) -> status_pb2.Status:
    answer = next(answer for kind, answer in _ANSWERS if isinstance(error, kind))
    code, message, details = answer(error)
    message = error.message if message is None else message
    packed = []
    for detail in details:
        any_message = any_pb2.Any()
        any_message.Pack(detail)
        packed.append(any_message)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


def failure(error: ImagegateError) -> RpcFailure:
    """The gRPC status a caller sees for ``error``."""
    if isinstance(error, KeptFailure):
        return failure_of_status(error.status)
    status = _status(error)
    request_id = error.request_id if isinstance(error, UpstreamFailure) else None
    return _failure_of(status, request_id)


def _failure_of(status: status_pb2.Status, request_id: str | None = None) -> RpcFailure:
    code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
    trailing: list[tuple[str, str | bytes]] = [(DETAILS_KEY, status.SerializeToString())]
    if request_id:
        trailing.append((UPSTREAM_REQUEST_ID, request_id))
    return RpcFailure(code, status.message, tuple(trailing))


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_bytes(error: BaseException) -> bytes:
    """The ``google.rpc.Status`` a caller would get for ``error``, serialized (what a
    job keeps as its Operation.error): INTERNAL for anything but our own errors."""
    status = _status(error) if isinstance(error, ImagegateError) else INTERNAL_STATUS
    data: bytes = status.SerializeToString()
    return data


def failure_of_status(data: bytes) -> RpcFailure:
    """The ending of a call whose outcome is a kept status (a retry collecting a
    failed call)."""
    return _failure_of(status_pb2.Status.FromString(data))


INTERNAL_STATUS = status_pb2.Status(
    code=grpc.StatusCode.INTERNAL.value[0], message="internal error"
)
INTERNAL = RpcFailure(
    grpc.StatusCode.INTERNAL,
    "internal error",
    ((DETAILS_KEY, INTERNAL_STATUS.SerializeToString()),),
)
