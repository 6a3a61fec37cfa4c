"""Failures from or about the upstream (OpenAI, Azure, a compatible server): an
error it answered, no upstream for the model, a timeout, no connection, an answer
not taken; and whether such an ending may have been billed."""

from __future__ import annotations

import enum

from imagegate_server.errors.base import ImagegateError
from imagegate_server.errors.caller import InvalidRequest, NotPermitted
from imagegate_server.errors.limits import LimitExceeded


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
