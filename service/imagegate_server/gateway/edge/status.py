"""Errors -> gRPC status codes with ``google.rpc`` details.

Upstream errors arrive classified by kind (the upstream knows HTTP; this does not).
The table (also in the contract's service comment and the README):

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from imagegate_server.errors import (
    AlreadyExists,
    CallerStalled,
    ImagegateError,
    InvalidRequest,
    JobAborted,
    JobCancelled,
    JobTimedOut,
    KeptFailure,
    LimiterUnavailable,
    LimitExceeded,
    LimitRefused,
    ModelRetired,
    ModelUnpriced,
    NotPermitted,
    NoUpstream,
    OperationNotDone,
    OperationNotFound,
    ResultTooLarge,
    StoredImageNotFound,
    StoreUnavailable,
    Unauthenticated,
    UpstreamError,
    UpstreamErrorKind,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamTimeout,
)

ERROR_DOMAIN = "imagegate"
UPSTREAM_REQUEST_ID = "x-upstream-request-id"
DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RpcFailure:
    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


# What one kind of error becomes: its code, a message (None: the error's own) and details.
Answer = tuple[grpc.StatusCode, str | None, list[Any]]


def _info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)


def _retry_in(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def _unauthenticated(error: Unauthenticated) -> Answer:
    return grpc.StatusCode.UNAUTHENTICATED, None, [_info("UNAUTHENTICATED")]


def _not_permitted(error: NotPermitted) -> Answer:
    return grpc.StatusCode.PERMISSION_DENIED, None, [_info(error.reason, **error.metadata)]


def _unpriced(error: ModelUnpriced) -> Answer:
    details = [_info("MODEL_UNPRICED", model=error.model[:100])]
    return grpc.StatusCode.FAILED_PRECONDITION, None, details


def _limiter_unavailable(error: LimiterUnavailable) -> Answer:
    return grpc.StatusCode.UNAVAILABLE, None, [_info("LIMITER_UNAVAILABLE")]


def _invalid(error: InvalidRequest) -> Answer:
    violations = [
        error_details_pb2.BadRequest.FieldViolation(
            field=v.field, description=v.description, reason=v.reason
        )
        for v in error.violations
    ]
    return (
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
        [error_details_pb2.BadRequest(field_violations=violations)],
    )


def _retired(error: ModelRetired) -> Answer:
    info = _info(
        "MODEL_RETIRED",
        model=error.model[:100],
        shutdown_date=error.shutdown.isoformat(),
        replacement=error.replacement,
    )
    return grpc.StatusCode.NOT_FOUND, None, [info]


def _limit(error: LimitExceeded) -> Answer:
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=error.subject, description=error.message
    )
    details: list[Any] = []
    if isinstance(error, LimitRefused):
        # Subject: whose quota it is; quota_id: which limit (as QuotaService names it).
        violation.subject = "gateway" if error.gateway_wide else f"client:{error.client}"
        violation.quota_id = error.limit
        if error.retry_after_s is not None and not error.permanent:
            details.append(_retry_in(error.retry_after_s))
    details.insert(0, error_details_pb2.QuotaFailure(violations=[violation]))
    return grpc.StatusCode.RESOURCE_EXHAUSTED, None, details


def _already_exists(error: AlreadyExists) -> Answer:
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=error.field, description=error.message, reason="request_id_reused"
    )
    details = [error_details_pb2.BadRequest(field_violations=[violation])]
    return grpc.StatusCode.ALREADY_EXISTS, None, details


def _too_large(error: ResultTooLarge) -> Answer:
    return grpc.StatusCode.RESOURCE_EXHAUSTED, None, []


def _stalled(error: CallerStalled) -> Answer:
    details = [_info(error.reason, timeout_s=f"{error.timeout_s:g}")]
    return grpc.StatusCode.DEADLINE_EXCEEDED, None, details


_CODE_OF_KIND = {
    UpstreamErrorKind.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    UpstreamErrorKind.AUTHENTICATION: grpc.StatusCode.INTERNAL,
    UpstreamErrorKind.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    UpstreamErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    UpstreamErrorKind.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UpstreamErrorKind.QUOTA: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UpstreamErrorKind.SERVER: grpc.StatusCode.UNAVAILABLE,
}


def _upstream(error: UpstreamError) -> Answer:
    code = _CODE_OF_KIND[error.kind]
    message = None
    if error.kind is UpstreamErrorKind.AUTHENTICATION:
        reason = "UPSTREAM_AUTHENTICATION"
        # OpenAI's message quotes part of the key and concerns the operator only.
        message = "the gateway's OpenAI credentials were rejected; contact its operator"
    else:
        reason = error.code or error.error_type or f"UPSTREAM_HTTP_{error.status}"
    metadata = {"upstream_status": str(error.status)}
    if error.param:
        metadata["param"] = error.param
    if error.request_id:
        metadata["upstream_request_id"] = error.request_id
    details: list[Any] = [
        error_details_pb2.ErrorInfo(reason=reason, domain="api.openai.com", metadata=metadata)
    ]
    if error.param and code == grpc.StatusCode.INVALID_ARGUMENT:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=f"parameters.{error.param}",
            description=message or error.message,
            reason=reason,
        )
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if error.kind is UpstreamErrorKind.RATE_LIMITED and error.retry_after_s:
        details.append(_retry_in(error.retry_after_s))
    return code, message, details


def _no_upstream(error: NoUpstream) -> Answer:
    return grpc.StatusCode.NOT_FOUND, None, [_info("NO_UPSTREAM", model=error.model[:100])]


def _protocol(error: UpstreamProtocolError) -> Answer:
    metadata = {"upstream_request_id": error.request_id} if error.request_id else {}
    return grpc.StatusCode.UNAVAILABLE, None, [_info(error.fault.value, **metadata)]


def _timeout(error: UpstreamTimeout) -> Answer:
    return grpc.StatusCode.DEADLINE_EXCEEDED, None, []


def _unavailable(error: ImagegateError) -> Answer:
    return grpc.StatusCode.UNAVAILABLE, None, []


# In order: the first entry whose type the error is an instance of answers it.
_ANSWERS: tuple[tuple[type[Any], Callable[[Any], Answer]], ...] = (
    (Unauthenticated, _unauthenticated),
    (NotPermitted, _not_permitted),
    (ModelUnpriced, _unpriced),
    (LimiterUnavailable, _limiter_unavailable),
    (InvalidRequest, _invalid),
    (ModelRetired, _retired),
    (LimitExceeded, _limit),
    (ResultTooLarge, _too_large),
    (StoreUnavailable, lambda e: (grpc.StatusCode.UNAVAILABLE, None, [_info("STORE_UNAVAILABLE")])),
    (CallerStalled, _stalled),
    (
        StoredImageNotFound,
        lambda e: (grpc.StatusCode.NOT_FOUND, None, [_info("STORED_IMAGE_NOT_FOUND")]),
    ),
    (AlreadyExists, _already_exists),
    (OperationNotFound, lambda e: (grpc.StatusCode.NOT_FOUND, None, [])),
    (OperationNotDone, lambda e: (grpc.StatusCode.FAILED_PRECONDITION, None, [])),
    (JobCancelled, lambda e: (grpc.StatusCode.CANCELLED, None, [])),
    (JobAborted, lambda e: (grpc.StatusCode.ABORTED, None, [_info("JOB_ABORTED")])),
    (
        JobTimedOut,
        lambda e: (grpc.StatusCode.DEADLINE_EXCEEDED, None, [_info("JOB_QUEUE_TIMEOUT")]),
    ),
    (UpstreamError, _upstream),
    (NoUpstream, _no_upstream),
    (UpstreamTimeout, _timeout),
    (UpstreamProtocolError, _protocol),
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
