"""The gateway's exception tree: one base class, one subclass per kind of failure.

Each carries exactly what the caller may see (never an upstream exception's text);
:mod:`imagegate_server.gateway.edge.status` turns them into gRPC statuses with
``google.rpc`` details. One module per family; import them from here.

    StartupError              the gateway cannot start (not an answer)        .base
    ImagegateError                                                            .base
    ├── Unauthenticated       no valid caller credentials   UNAUTHENTICATED   .caller
    ├── NotPermitted          the caller's policy forbids   PERMISSION_DENIED + ErrorInfo
    ├── InvalidRequest        bad input found locally       INVALID_ARGUMENT + BadRequest
    ├── ModelRetired          OpenAI shut the model down    NOT_FOUND + ErrorInfo(MODEL_RETIRED)
    ├── CallerStalled         an upload's next message late  DEADLINE_EXCEEDED + ErrorInfo
    ├── ModelUnpriced         a budget, but no price        FAILED_PRECONDITION   .limits
    ├── LimitExceeded         a gateway limit               RESOURCE_EXHAUSTED + QuotaFailure
    │   └── LimitRefused      a per-client or gateway-wide limit of the limiter
    │                                                       ... + RetryInfo when it frees
    ├── LimiterUnavailable    the limits store is down and this kind fails closed  UNAVAILABLE
    ├── ResultTooLarge        unary result over send limit  RESOURCE_EXHAUSTED
    ├── StoreUnavailable      the result store failed a write UNAVAILABLE   .store
    ├── StoredImageNotFound   not the caller's stored image NOT_FOUND + ErrorInfo
    ├── AlreadyExists         a request id reused with other parameters  ALREADY_EXISTS  .jobs
    ├── OperationNotFound     no such operation (or another client's)    NOT_FOUND
    ├── OperationNotDone      deleting an operation still running       FAILED_PRECONDITION
    ├── JobCancelled          the job was cancelled          CANCELLED
    ├── JobAborted            its replica died after sending it upstream  ABORTED
    ├── JobTimedOut           queued past the queue timeout  DEADLINE_EXCEEDED
    ├── KeptFailure           a request id's call failed before: its status again
    └── UpstreamFailure       anything from/about OpenAI                       .upstream
        ├── NoUpstream        no upstream serves the model  NOT_FOUND + ErrorInfo(NO_UPSTREAM)
        ├── UpstreamError     OpenAI answered with an error status
        ├── UpstreamTimeout   deadline or upstream timeout  DEADLINE_EXCEEDED
        ├── UpstreamUnreachable  connect failure / reset    UNAVAILABLE
        └── UpstreamProtocolError  an answer we cannot take UNAVAILABLE + ErrorInfo(reason)

Upstream text that may reach a caller is cut and stripped of keys by
:mod:`.redaction`.
"""

from imagegate_server.errors.base import ImagegateError, StartupError
from imagegate_server.errors.caller import (
    CallerStalled,
    FieldViolation,
    InvalidRequest,
    ModelRetired,
    NotPermitted,
    Unauthenticated,
)
from imagegate_server.errors.jobs import (
    AlreadyExists,
    JobAborted,
    JobCancelled,
    JobTimedOut,
    KeptFailure,
    OperationNotDone,
    OperationNotFound,
)
from imagegate_server.errors.limits import (
    LimiterUnavailable,
    LimitExceeded,
    LimitRefused,
    ModelUnpriced,
    ResultTooLarge,
)
from imagegate_server.errors.redaction import FIELD_BYTES, MESSAGE_BYTES, clip, redact
from imagegate_server.errors.store import StoredImageNotFound, StoreUnavailable
from imagegate_server.errors.upstream import (
    AnswerFault,
    NoUpstream,
    UpstreamError,
    UpstreamErrorKind,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
    may_have_billed,
)

__all__ = [
    "FIELD_BYTES",
    "MESSAGE_BYTES",
    "AlreadyExists",
    "AnswerFault",
    "CallerStalled",
    "FieldViolation",
    "ImagegateError",
    "InvalidRequest",
    "JobAborted",
    "JobCancelled",
    "JobTimedOut",
    "KeptFailure",
    "LimitExceeded",
    "LimitRefused",
    "LimiterUnavailable",
    "ModelRetired",
    "ModelUnpriced",
    "NoUpstream",
    "NotPermitted",
    "OperationNotDone",
    "OperationNotFound",
    "ResultTooLarge",
    "StartupError",
    "StoreUnavailable",
    "StoredImageNotFound",
    "Unauthenticated",
    "UpstreamError",
    "UpstreamErrorKind",
    "UpstreamFailure",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "clip",
    "may_have_billed",
    "redact",
]
