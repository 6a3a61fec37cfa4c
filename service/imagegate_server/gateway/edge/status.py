"""Errors -> gRPC status codes with ``google.rpc`` details.

Upstream errors arrive classified by kind (the upstream knows HTTP; this does not).
The table (also in the contract's service comment and the README):

    InvalidRequest                 INVALID_ARGUMENT    BadRequest
    ModelRetired                   NOT_FOUND           ErrorInfo(MODEL_RETIRED: model,
                                                       shutdown_date, replacement)
    LimitExceeded                  RESOURCE_EXHAUSTED  QuotaFailure
    ResultTooLarge                 RESOURCE_EXHAUSTED
    OpenAI 400/413/422 (and other 4xx not below)
                                   INVALID_ARGUMENT    ErrorInfo(reason=code|type),
                                                       BadRequest(param)
    OpenAI 401                     INTERNAL            ErrorInfo(UPSTREAM_AUTHENTICATION)
    OpenAI 403                     PERMISSION_DENIED   ErrorInfo
    OpenAI 404                     NOT_FOUND           ErrorInfo
    OpenAI 429 rate limit          RESOURCE_EXHAUSTED  ErrorInfo, RetryInfo(retry-after)
    OpenAI 429 insufficient_quota  RESOURCE_EXHAUSTED  ErrorInfo (no RetryInfo: waiting won't help)
    OpenAI 5xx                     UNAVAILABLE         ErrorInfo
    UpstreamTimeout                DEADLINE_EXCEEDED
    UpstreamUnreachable / Protocol UNAVAILABLE
    anything else                  INTERNAL            "internal error" (details: logs only)
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from imagegate_server.errors import (
    ImagegateError,
    InvalidRequest,
    LimitExceeded,
    ModelRetired,
    ResultTooLarge,
    UpstreamError,
    UpstreamErrorKind,
    UpstreamFailure,
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


def _pack(*details: object) -> list[any_pb2.Any]:
    packed = []
    for detail in details:
        any_message = any_pb2.Any()
        any_message.Pack(detail)  # type: ignore[arg-type]
        packed.append(any_message)
    return packed


_CODE_OF_KIND = {
    UpstreamErrorKind.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    UpstreamErrorKind.AUTHENTICATION: grpc.StatusCode.INTERNAL,
    UpstreamErrorKind.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    UpstreamErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    UpstreamErrorKind.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UpstreamErrorKind.QUOTA: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UpstreamErrorKind.SERVER: grpc.StatusCode.UNAVAILABLE,
}


def _upstream_code(error: UpstreamError) -> tuple[grpc.StatusCode, str]:
    if error.kind is UpstreamErrorKind.AUTHENTICATION:
        return grpc.StatusCode.INTERNAL, "UPSTREAM_AUTHENTICATION"
    reason = error.code or error.error_type or f"UPSTREAM_HTTP_{error.status}"
    return _CODE_OF_KIND[error.kind], reason


def failure(error: ImagegateError) -> RpcFailure:
    """The gRPC status a caller sees for ``error``."""
    details: list[object] = []
    request_id = error.request_id if isinstance(error, UpstreamFailure) else None
    message = error.message
    if isinstance(error, InvalidRequest):
        code = grpc.StatusCode.INVALID_ARGUMENT
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description, reason=v.reason
                    )
                    for v in error.violations
                ]
            )
        )
    elif isinstance(error, ModelRetired):
        code = grpc.StatusCode.NOT_FOUND
        details.append(
            error_details_pb2.ErrorInfo(
                reason="MODEL_RETIRED",
                domain=ERROR_DOMAIN,
                metadata={
                    "model": error.model[:100],
                    "shutdown_date": error.shutdown.isoformat(),
                    "replacement": error.replacement,
                },
            )
        )
    elif isinstance(error, LimitExceeded):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=error.subject, description=error.message
                    )
                ]
            )
        )
    elif isinstance(error, ResultTooLarge):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
    elif isinstance(error, UpstreamError):
        code, reason = _upstream_code(error)
        metadata = {"upstream_status": str(error.status)}
        if error.param:
            metadata["param"] = error.param
        if request_id:
            metadata["upstream_request_id"] = request_id
        if reason == "UPSTREAM_AUTHENTICATION":
            # OpenAI's message quotes part of the key and concerns the operator only.
            message = "the gateway's OpenAI credentials were rejected; contact its operator"
        details.append(
            error_details_pb2.ErrorInfo(reason=reason, domain="api.openai.com", metadata=metadata)
        )
        if error.param and code == grpc.StatusCode.INVALID_ARGUMENT:
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=f"parameters.{error.param}", description=message, reason=reason
                        )
                    ]
                )
            )
        if error.kind is UpstreamErrorKind.RATE_LIMITED and error.retry_after_s:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(error.retry_after_s * 1e9))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    elif isinstance(error, UpstreamTimeout):
        code = grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        code = grpc.StatusCode.UNAVAILABLE
    status = status_pb2.Status(code=code.value[0], message=message, details=_pack(*details))
    trailing: list[tuple[str, str | bytes]] = [(DETAILS_KEY, status.SerializeToString())]
    if request_id:
        trailing.append((UPSTREAM_REQUEST_ID, request_id))
    return RpcFailure(code, message, tuple(trailing))


INTERNAL = RpcFailure(
    grpc.StatusCode.INTERNAL,
    "internal error",
    (
        (
            DETAILS_KEY,
            status_pb2.Status(
                code=grpc.StatusCode.INTERNAL.value[0], message="internal error"
            ).SerializeToString(),
        ),
    ),
)
