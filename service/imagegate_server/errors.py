"""The gateway's exception tree: one base class, one subclass per kind of failure.

Each carries exactly what the caller may see (never an upstream exception's text);
:mod:`imagegate_server.gateway.edge.status` turns them into gRPC statuses with
``google.rpc`` details.

    ImagegateError
    ├── Unauthenticated       no valid caller credentials   UNAUTHENTICATED
    ├── NotPermitted          the caller's policy forbids   PERMISSION_DENIED + ErrorInfo
    ├── ModelUnpriced         a budget, but no price        FAILED_PRECONDITION + ErrorInfo
    ├── LimiterUnavailable    limits store down, fail closed UNAVAILABLE
    ├── InvalidRequest        bad input found locally       INVALID_ARGUMENT + BadRequest
    ├── ModelRetired          OpenAI shut the model down    NOT_FOUND + ErrorInfo(MODEL_RETIRED)
    ├── LimitExceeded         a gateway limit               RESOURCE_EXHAUSTED + QuotaFailure
    │   └── LimitRefused      a client's or the fleet's     ... + RetryInfo when it frees
    │   └── LimitRefused      a per-client or gateway-wide limit of the limiter
    ├── LimiterUnavailable    the limits store is down and this kind fails closed  UNAVAILABLE
    ├── ResultTooLarge        unary result over send limit  RESOURCE_EXHAUSTED
    ├── CallerStalled         an upload's next message late  DEADLINE_EXCEEDED + ErrorInfo
    └── UpstreamFailure       anything from/about OpenAI
        ├── UpstreamError     OpenAI answered with an error status
        ├── UpstreamTimeout   deadline or upstream timeout  DEADLINE_EXCEEDED
        ├── UpstreamUnreachable  connect failure / reset    UNAVAILABLE
        └── UpstreamProtocolError  unparseable answer       UNAVAILABLE
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Anything that looks like an OpenAI key is cut from upstream messages before they
# are relayed: OpenAI's own 401 message quotes part of the key.
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*]{4,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets (the configured keys, whatever their shape) and
    anything shaped like an OpenAI key replaced, and bounded in length."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("sk-***", text)[:1000]


class StartupError(Exception):
    """The gateway cannot start; the message is one line for the operator (no secrets)."""


class ImagegateError(Exception):
    """Base of every error the gateway answers with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(ImagegateError):
    """The call carries no credentials this gateway accepts. One message for every
    cause (unknown token, wrong secret, bad checksum, expired, unknown certificate),
    so a caller cannot probe which part was wrong."""


class NotPermitted(ImagegateError):
    """The caller's policy forbids this call (a model, an operation, its ``n``)."""

    def __init__(self, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata


class ModelUnpriced(ImagegateError):
    """The caller has a spend budget, but the price table cannot price the model, and
    the operator's policy is to refuse rather than reserve the table's maximum."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"model '{model[:100]}' has no price in this gateway's price table, so the "
            "caller's spend budget cannot be enforced; ask the operator to price it"
        )
        self.model = model


@dataclass(frozen=True)
class FieldViolation:
    """A field of the request (proto path, e.g. ``parameters.images[1]``) and what is wrong."""

    field: str
    description: str
    reason: str = ""
    """A machine-readable reason (OpenAI-like code), when there is one."""


class InvalidRequest(ImagegateError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        super().__init__(f"invalid request: {summary}")
        self.violations = violations

    @classmethod
    def one(cls, field: str, description: str, reason: str = "") -> InvalidRequest:
        return cls([FieldViolation(field, description, reason)])


class ModelRetired(ImagegateError):
    """The call names a model OpenAI no longer serves; answered without going upstream."""

    def __init__(
        self, model: str, shutdown: datetime.date, replacement: str, *, operation_served: bool
    ) -> None:
        advice = (
            f"use '{replacement}' instead"
            if operation_served
            else f"OpenAI serves this operation with no other model ('{replacement}' replaces "
            "it for the others); use a compatible server that still offers it"
        )
        super().__init__(
            f"model '{model[:100]}' was shut down by OpenAI on {shutdown.isoformat()}; {advice}"
        )
        self.model = model
        self.shutdown = shutdown
        self.replacement = replacement


class LimitExceeded(ImagegateError):
    def __init__(self, subject: str, description: str) -> None:
        super().__init__(description)
        self.subject = subject


class LimitRefused(LimitExceeded):
    """The limiter refused a call: one named limit (the ``QuotaFailure`` subject) is spent.

    ``retry_after_s`` is when that limit frees: exact for rates, the start of the next
    UTC day or month for budgets, None when no wait can be known (concurrent calls end
    when they end) or when no wait helps (``permanent``: the call alone exceeds the
    limit, e.g. ``n`` above the burst, or a reservation above the whole budget).
    """

    def __init__(
        self,
        limit: str,
        description: str,
        *,
        client: str,
        retry_after_s: float | None,
        permanent: bool = False,
        gateway_wide: bool = False,
    ) -> None:
        super().__init__(limit, description)
        self.limit = limit
        self.client = client
        self.retry_after_s = retry_after_s
        self.permanent = permanent
        self.gateway_wide = gateway_wide
        """The limit is the gateway-wide ceiling every client shares, not the client's."""


class LimiterUnavailable(ImagegateError):
    """The shared limits store (Redis) cannot be reached and a kind of limit this call
    needs fails closed (by default: budgets). The message names no address or secret."""


class ResultTooLarge(ImagegateError):
    pass


class CallerStalled(ImagegateError):
    """An upload's caller did not send its next message in time: its first one
    (``FIRST_MESSAGE_TIMEOUT``) or one mid-upload (``UPLOAD_STALLED``)."""

    def __init__(self, reason: str, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.timeout_s = timeout_s


class UpstreamFailure(ImagegateError):
    def __init__(
        self, message: str, request_id: str | None = None, *, may_have_billed: bool = False
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.may_have_billed = may_have_billed
        """The request reached OpenAI and its answer was lost or broken: OpenAI may
        have generated (and billed) the images. The API has no idempotency key."""


class UpstreamErrorKind(enum.Enum):
    """What an OpenAI error means for the caller, whatever carried it (an HTTP status,
    an SSE error event): the upstream classifies, the edge maps kinds to gRPC codes."""

    INVALID_REQUEST = "invalid_request"
    """The request (400, 413, 422, other 4xx) or its content (moderation)."""
    AUTHENTICATION = "authentication"
    """The gateway's own key was refused (401): an operator problem."""
    PERMISSION = "permission"
    """403."""
    NOT_FOUND = "not_found"
    """404: an unknown model, for example."""
    RATE_LIMITED = "rate_limited"
    """429: refused before generating; waiting helps."""
    QUOTA = "quota"
    """429 insufficient_quota: waiting does not help."""
    SERVER = "server"
    """5xx, or a server error event mid-stream."""


class UpstreamError(UpstreamFailure):
    """OpenAI answered with an error (status and error JSON, or an SSE error event).

    The message is relayed to callers: whoever builds one redacts it first.
    """

    def __init__(
        self,
        kind: UpstreamErrorKind,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, request_id)
        self.kind = kind
        self.status = status
        """The HTTP status (for an error event, the status its HTTP twin carries);
        reported to callers as information, never branched on above the upstream."""
        self.error_type = error_type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s


class UpstreamTimeout(UpstreamFailure):
    pass


class UpstreamUnreachable(UpstreamFailure):
    pass


class UpstreamProtocolError(UpstreamFailure):
    """OpenAI answered, but not in a shape we can map: it generated the images."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message, request_id, may_have_billed=True)
