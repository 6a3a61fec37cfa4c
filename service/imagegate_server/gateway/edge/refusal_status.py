"""The gateway's own refusals as gRPC answers: the code and details of each error it
raises itself (the caller, its limits, the result store, jobs and request ids), in
the order the table in :mod:`.status` reads them."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2

from imagegate_server.errors import (
    AlreadyExists,
    CallerStalled,
    InvalidRequest,
    JobAborted,
    JobCancelled,
    JobTimedOut,
    LimiterUnavailable,
    LimitExceeded,
    LimitRefused,
    ModelRetired,
    ModelUnpriced,
    NotPermitted,
    OperationNotDone,
    OperationNotFound,
    ResultTooLarge,
    StoredImageNotFound,
    StoreUnavailable,
    Unauthenticated,
)
from imagegate_server.gateway.edge.status_details import Answer, Answers, info, retry_in


def _unauthenticated(error: Unauthenticated) -> Answer:
    return grpc.StatusCode.UNAUTHENTICATED, None, [info("UNAUTHENTICATED")]


def _not_permitted(error: NotPermitted) -> Answer:
    return grpc.StatusCode.PERMISSION_DENIED, None, [info(error.reason, **error.metadata)]


def _unpriced(error: ModelUnpriced) -> Answer:
    details = [info("MODEL_UNPRICED", model=error.model[:100])]
    return grpc.StatusCode.FAILED_PRECONDITION, None, details


def _limiter_unavailable(error: LimiterUnavailable) -> Answer:
    return grpc.StatusCode.UNAVAILABLE, None, [info("LIMITER_UNAVAILABLE")]


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
    retired = info(
        "MODEL_RETIRED",
        model=error.model[:100],
        shutdown_date=error.shutdown.isoformat(),
        replacement=error.replacement,
    )
    return grpc.StatusCode.NOT_FOUND, None, [retired]


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
            details.append(retry_in(error.retry_after_s))
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
    details = [info(error.reason, timeout_s=f"{error.timeout_s:g}")]
    return grpc.StatusCode.DEADLINE_EXCEEDED, None, details


# In order: the first entry whose type the error is an instance of answers it.
REFUSAL_ANSWERS: Answers = (
    (Unauthenticated, _unauthenticated),
    (NotPermitted, _not_permitted),
    (ModelUnpriced, _unpriced),
    (LimiterUnavailable, _limiter_unavailable),
    (InvalidRequest, _invalid),
    (ModelRetired, _retired),
    (LimitExceeded, _limit),
    (ResultTooLarge, _too_large),
    (StoreUnavailable, lambda e: (grpc.StatusCode.UNAVAILABLE, None, [info("STORE_UNAVAILABLE")])),
    (CallerStalled, _stalled),
    (
        StoredImageNotFound,
        lambda e: (grpc.StatusCode.NOT_FOUND, None, [info("STORED_IMAGE_NOT_FOUND")]),
    ),
    (AlreadyExists, _already_exists),
    (OperationNotFound, lambda e: (grpc.StatusCode.NOT_FOUND, None, [])),
    (OperationNotDone, lambda e: (grpc.StatusCode.FAILED_PRECONDITION, None, [])),
    (JobCancelled, lambda e: (grpc.StatusCode.CANCELLED, None, [])),
    (JobAborted, lambda e: (grpc.StatusCode.ABORTED, None, [info("JOB_ABORTED")])),
    (
        JobTimedOut,
        lambda e: (grpc.StatusCode.DEADLINE_EXCEEDED, None, [info("JOB_QUEUE_TIMEOUT")]),
    ),
)
