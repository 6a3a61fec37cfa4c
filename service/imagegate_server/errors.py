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
    ├── StoreUnavailable      the result store failed a write UNAVAILABLE + ErrorInfo
    ├── CallerStalled         an upload's next message late  DEADLINE_EXCEEDED + ErrorInfo
    ├── StoredImageNotFound   not the caller's stored image NOT_FOUND + ErrorInfo
    ├── AlreadyExists         a request id reused with other parameters  ALREADY_EXISTS + BadRequest
    ├── OperationNotFound     no such operation (or another client's)    NOT_FOUND
    ├── OperationNotDone      deleting an operation still running       FAILED_PRECONDITION
    ├── JobCancelled          the job was cancelled          CANCELLED
    ├── JobAborted            its replica died after sending it upstream  ABORTED
    ├── JobTimedOut           queued past the queue timeout  DEADLINE_EXCEEDED
    ├── KeptFailure           a request id's call failed before: its status again
    └── UpstreamFailure       anything from/about OpenAI
        ├── NoUpstream        no upstream serves the model  NOT_FOUND + ErrorInfo(NO_UPSTREAM)
        ├── UpstreamError     OpenAI answered with an error status
        ├── UpstreamTimeout   deadline or upstream timeout  DEADLINE_EXCEEDED
        ├── UpstreamUnreachable  connect failure / reset    UNAVAILABLE
        └── UpstreamProtocolError  an answer we cannot take UNAVAILABLE + ErrorInfo(reason)
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

# What an upstream error may put into a caller's status, in UTF-8 bytes. A status
# travels in trailing metadata, which gRPC clients cap (8 KiB soft, 16 KiB hard in
# most): the message goes twice (grpc-message, percent-encoded: up to 3 bytes per
# byte, and the details) and a field violation may repeat it, so these keep the
# whole status near 4 KiB at worst, whatever the upstream sent.
MESSAGE_BYTES = 512
"""An upstream error's message (OpenAI's are one or two sentences)."""
FIELD_BYTES = 64
"""An upstream error's ``code``, ``type`` and ``param`` (OpenAI's are short names)."""


def clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary."""
    if len(text) * 4 <= max_bytes:  # even four bytes per character fit
        return text
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets (the configured keys, whatever their shape) and
    anything shaped like an OpenAI key replaced, cut to :data:`MESSAGE_BYTES`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return clip(_KEY_PATTERN.sub("sk-***", text), MESSAGE_BYTES)


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


class StoreUnavailable(ImagegateError):
    """The result store is down, too slow or refused an operation; nothing of the
    object is visible. ``kind`` says which (``unreachable``, ``timeout``,
    ``denied``, ``not_found``, ``refused``, ``io``), for metrics and logs; the
    message names no address, bucket or credential."""

    def __init__(self, kind: str, operation: str = "put") -> None:
        super().__init__(f"the result store is unavailable ({operation} failed: {kind})")
        self.kind = kind
        self.operation = operation


class CallerStalled(ImagegateError):
    """An upload's caller did not send its next message in time: its first one
    (``FIRST_MESSAGE_TIMEOUT``) or one mid-upload (``UPLOAD_STALLED``)."""

    def __init__(self, reason: str, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.timeout_s = timeout_s


class StoredImageNotFound(ImagegateError):
    """No stored image of the caller's client by that reference: one answer whether it
    is another client's, expired, deleted or never existed (no oracle)."""

    def __init__(self) -> None:
        super().__init__("no stored image of this client has that reference (or it expired)")


class AlreadyExists(ImagegateError):
    """A request id (AIP-155) came back with another request: ``field`` is the first
    field that differs (``request_id`` itself when it was used on another RPC)."""

    def __init__(self, request_id: str, field: str) -> None:
        if field == "request_id":
            message = f"request_id {request_id} was used before on another RPC of this client"
        else:
            message = f"request_id {request_id} was used before with a different {field}"
        super().__init__(message)
        self.field = field


class OperationNotFound(ImagegateError):
    """No operation of the caller has this name: unknown, expired, or another
    client's (one answer for all three, so that names cannot be probed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no operation {name[:60]} for this client")


class OperationNotDone(ImagegateError):
    """DeleteOperation on an operation that has not finished (cancel it first)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"operation {name[:60]} has not finished; cancel it, then delete it")


class JobCancelled(ImagegateError):
    def __init__(self) -> None:
        super().__init__("the job was cancelled")


class JobAborted(ImagegateError):
    """The replica running the job stopped (killed, out of memory) after its request
    had gone upstream: it is never re-run, since OpenAI may have billed it."""

    def __init__(self) -> None:
        super().__init__(
            "the gateway replica running this job stopped after sending it to OpenAI; "
            "it was not run again (OpenAI may have billed it: its estimate was charged)"
        )


class KeptFailure(ImagegateError):
    """A call with a request id ended with this status (a serialized
    ``google.rpc.Status``) before: its retry gets the same status."""

    def __init__(self, status: bytes) -> None:
        super().__init__("the call with this request_id failed")
        self.status = status


class JobTimedOut(ImagegateError):
    """The job waited in its queue longer than the gateway keeps jobs queued."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the job waited in the queue for more than {seconds:g} s")


class UpstreamFailure(ImagegateError):
    def __init__(
        self,
        message: str,
        request_id: str | None = None,
        *,
        may_have_billed: bool = False,
        generated_nothing: bool = False,
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.may_have_billed = may_have_billed
        """The request reached OpenAI and its answer was lost or broken: OpenAI may
        have generated (and billed) the images. The API has no idempotency key."""
        self.generated_nothing = generated_nothing
        """Proven to have generated nothing: no connection was made, the upstream
        refused before generating (429, ``x-should-retry: true``), or answered 5xx
        before the request's body was all sent. Only such a failure may move the call
        to another upstream: anything else may have billed."""
        self.upstream: str | None = None
        """The name of the upstream that failed (set by the upstream client)."""


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
        generated_nothing: bool = False,
    ) -> None:
        super().__init__(message, request_id, generated_nothing=generated_nothing)
        self.kind = kind
        self.status = status
        """The HTTP status (for an error event, the status its HTTP twin carries);
        reported to callers as information, never branched on above the upstream."""
        self.error_type = error_type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s


class NoUpstream(UpstreamFailure):
    """No upstream of the upstreams file serves the call's model (NOT_FOUND); nothing
    was sent."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"no upstream of this gateway serves model '{model[:100]}'", generated_nothing=True
        )
        self.model = model


class UpstreamTimeout(UpstreamFailure):
    pass


class UpstreamUnreachable(UpstreamFailure):
    pass


class AnswerFault(enum.Enum):
    """Why an answer of the upstream was not taken: the ``ErrorInfo`` reason callers
    get (UNAVAILABLE), and the label of the metric that counts them."""

    TOO_LARGE = "UPSTREAM_ANSWER_TOO_LARGE"
    """Larger than the largest answer the request allows: its body, an image decoded,
    or more images than asked for."""
    BAD_IMAGE = "UPSTREAM_BAD_IMAGE"
    """An image that is not base64, empty, or not in the format asked for."""
    ENCODING = "UPSTREAM_ENCODING"
    """A content encoding (gzip, br...) the gateway did not ask for."""
    NO_IMAGES = "UPSTREAM_NO_IMAGES"
    """A successful answer without any image (``{}``)."""
    BAD_ANSWER = "UPSTREAM_BAD_ANSWER"
    """Anything else that is no ImagesResponse or image event: invalid JSON, images
    outside ``data``, an answer that ended mid-image."""


class UpstreamProtocolError(UpstreamFailure):
    """OpenAI answered, but not in a shape we can take: it generated the images, so
    the call is charged its estimate."""

    def __init__(
        self,
        message: str,
        request_id: str | None = None,
        fault: AnswerFault = AnswerFault.BAD_ANSWER,
    ) -> None:
        super().__init__(message, request_id, may_have_billed=True)
        self.fault = fault


def may_have_billed(error: BaseException | None) -> bool:
    """Whether a request that went upstream and ended with ``error`` may have been
    billed by OpenAI (then it costs its estimate, as OpenAI bills generations whose
    answer is lost)."""
    if isinstance(error, UpstreamError):
        return False  # OpenAI answered with an error: it generated nothing
    if isinstance(error, InvalidRequest | NotPermitted | LimitExceeded):
        return False  # refused here (routing found no upstream to take it): nothing sent
    if isinstance(error, UpstreamFailure):
        return error.may_have_billed
    return True  # cancelled or timed out while OpenAI may have been generating
