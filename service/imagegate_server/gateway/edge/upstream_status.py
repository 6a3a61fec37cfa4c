"""OpenAI's failures as gRPC answers. The upstream classifies each error by kind
(it knows HTTP; this does not); here each kind, and each failure to get an answer at
all, becomes a code and details: ErrorInfo in the ``api.openai.com`` domain for what
OpenAI said, in the gateway's own for what it did not."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2

from imagegate_server.errors import (
    NoUpstream,
    UpstreamError,
    UpstreamErrorKind,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from imagegate_server.gateway.edge.status_details import Answer, Answers, info, retry_in

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
        details.append(retry_in(error.retry_after_s))
    return code, message, details


def _no_upstream(error: NoUpstream) -> Answer:
    return grpc.StatusCode.NOT_FOUND, None, [info("NO_UPSTREAM", model=error.model[:100])]


def _protocol(error: UpstreamProtocolError) -> Answer:
    metadata = {"upstream_request_id": error.request_id} if error.request_id else {}
    return grpc.StatusCode.UNAVAILABLE, None, [info(error.fault.value, **metadata)]


def _timeout(error: UpstreamTimeout) -> Answer:
    return grpc.StatusCode.DEADLINE_EXCEEDED, None, []


# In order, after the gateway's own refusals (UpstreamUnreachable: the catch-all).
UPSTREAM_ANSWERS: Answers = (
    (UpstreamError, _upstream),
    (NoUpstream, _no_upstream),
    (UpstreamTimeout, _timeout),
    (UpstreamProtocolError, _protocol),
)
