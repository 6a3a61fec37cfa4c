"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``, and the
same errors in Azure OpenAI's shape (:func:`azure_body`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# The longest code or param a fault may ask for (``code-len=N``): enough to break any
# gRPC client's metadata limit when relayed whole, small enough to hold per request.
MAX_FIELD_CHARS = 1 << 20


@dataclass
class ApiError(Exception):
    """An error response the emulator sends as OpenAI would."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", param, code)


def model_not_found(model: str) -> ApiError:
    # OpenAI's wording and shape for a model that does not exist (or is not the
    # caller's to use): 404, param null. The name is echoed, cut like a long value.
    return ApiError(
        404,
        f"The model `{model[:256]}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def missing_api_key() -> ApiError:
    return ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        code="invalid_api_key",
    )


def wrong_api_key(key: str) -> ApiError:
    # OpenAI shows only the key's tail; so does the emulator (never the whole key).
    tail = key[-4:] if len(key) > 8 else ""
    return ApiError(401, f"Incorrect API key provided: ...{tail}.", code="invalid_api_key")


def for_status(status: int) -> ApiError:
    """The canned error body of an injected status fault."""
    if status == 400:
        return bad_request("Invalid value for one of the parameters.", code="invalid_value")
    if status == 401:
        return wrong_api_key("")
    if status == 403:
        return ApiError(
            403,
            "You are not allowed to sample from this model",
            "invalid_request_error",
            code="permission_denied",
        )
    if status == 404:
        return ApiError(
            404,
            "The model does not exist or you do not have access to it.",
            code="model_not_found",
        )
    if status == 413:
        return ApiError(
            413,
            "Request too large: the uploaded files exceed the maximum request size.",
            "invalid_request_error",
            code="request_too_large",
        )
    if status == 422:
        return ApiError(
            422,
            "The request was well-formed but could not be processed.",
            "invalid_request_error",
            code="invalid_value",
        )
    if status == 429:
        return ApiError(
            429,
            "Rate limit reached for images per minute. Please try again later.",
            "requests",
            code="rate_limit_exceeded",
        )
    if status >= 500:
        return ApiError(
            status,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )
    return ApiError(status, f"Injected error {status}.", "invalid_request_error")


def insufficient_quota() -> ApiError:
    return ApiError(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        code="insufficient_quota",
    )


def moderation_blocked() -> ApiError:
    return ApiError(
        400,
        "Your request was rejected by the safety system. If you believe this is an "
        "error, contact us and include the request ID.",
        "image_generation_user_error",
        code="moderation_blocked",
    )


def _stretched(word: str, length: int) -> str:
    """``word`` padded with ``x`` (or cut) to exactly ``length`` characters."""
    return (word + "_" + "x" * length)[:length] if length > len(word) else word[:length]


def with_long_fields(
    error: ApiError, code_chars: int | None = None, param_chars: int | None = None
) -> ApiError:
    """``error`` with its ``code`` and/or ``param`` stretched to that many characters
    (its own code, or its type, and ``prompt`` padded with ``x``): an upstream whose
    error fields are far longer than OpenAI's, for the gateway's relaying bounds."""
    if code_chars is not None:
        error = replace(error, code=_stretched(error.code or error.type, code_chars))
    if param_chars is not None:
        error = replace(error, param=_stretched(error.param or "prompt", param_chars))
    return error


def azure_body(error: ApiError) -> dict[str, Any]:
    """``error`` in Azure's shape: ``{"error": {"code", "message"[, "param"]}}``."""
    code = error.code
    fields: dict[str, Any] = {}
    if code == "moderation_blocked":
        code = "contentFilter"
        fields["innererror"] = {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_results": {"violence": {"filtered": True, "severity": "high"}},
        }
    elif error.status == 429 or (error.status >= 500 and code is None):
        code = str(error.status)
    elif code is None:
        code = error.type
    body: dict[str, Any] = {"code": code, "message": error.message}
    if error.param is not None:
        body["param"] = error.param
    return {"error": {**body, **fields}}
