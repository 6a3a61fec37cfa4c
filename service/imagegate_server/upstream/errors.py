"""OpenAI's errors, as HTTP answers or SSE error events, into :class:`UpstreamError`.

Every message relayed from OpenAI (or a compatible server) is redacted here, before
it can reach a caller or a log line: the configured keys by their literal value,
whatever their shape, and anything shaped like an OpenAI key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from imagegate_server.errors import UpstreamError, UpstreamErrorKind, redact
from imagegate_server.upstream.retry import retry_after_s

# OpenAI names an error event's cause by code and type, not by HTTP status. These are
# the statuses the same errors carry as HTTP answers, so that a mid-stream error is
# classified as its HTTP twin would be (a content-policy rejection mid-stream is the
# caller's invalid request, not a retryable server error).
_STATUS_OF = {
    "invalid_request_error": 400,
    "image_generation_user_error": 400,
    "moderation_blocked": 400,
    "content_policy_violation": 400,
    "content_filter": 400,
    "invalid_value": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_denied": 403,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "api_error": 500,
    "service_unavailable": 503,
}


def kind_of(status: int, code: str | None) -> UpstreamErrorKind:
    if status == 401:
        return UpstreamErrorKind.AUTHENTICATION
    if status == 403:
        return UpstreamErrorKind.PERMISSION
    if status == 404:
        return UpstreamErrorKind.NOT_FOUND
    if status == 429:
        if code == "insufficient_quota":
            return UpstreamErrorKind.QUOTA
        return UpstreamErrorKind.RATE_LIMITED
    if status >= 500:
        return UpstreamErrorKind.SERVER
    return UpstreamErrorKind.INVALID_REQUEST


def event_status(error_type: str | None, code: str | None) -> int:
    """The HTTP status OpenAI answers with for an error of this code (first) or type."""
    for name in (code, error_type):
        if name is not None and name in _STATUS_OF:
            return _STATUS_OF[name]
    if any(name and name.endswith("_user_error") for name in (code, error_type)):
        return 400
    return 500


class ErrorDecoder:
    """Builds :class:`UpstreamError` from OpenAI's error shapes, redacting ``secrets``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(secret for secret in secrets if secret)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def from_response(self, response: httpx.Response) -> UpstreamError:
        """From an error response (read and closed here)."""
        try:
            content = await response.aread()
        except httpx.HTTPError:
            content = b""
        finally:
            await response.aclose()
        try:
            error = json.loads(content).get("error")
        except (ValueError, AttributeError):
            error = None
        fields = error if isinstance(error, dict) else {}
        code = _text(fields.get("code"))
        return UpstreamError(
            kind_of(response.status_code, code),
            response.status_code,
            self.redact(
                str(fields.get("message") or f"the upstream answered HTTP {response.status_code}")
            ),
            error_type=_text(fields.get("type")),
            code=code,
            param=_text(fields.get("param")),
            request_id=response.headers.get("x-request-id"),
            retry_after_s=retry_after_s(response.headers),
        )

    def from_event(self, payload: Mapping[str, Any], request_id: str | None) -> UpstreamError:
        """From an SSE ``error`` event: ``{"error": {...}}`` or the flat event shape."""
        nested = payload.get("error")
        error: Mapping[str, Any] = nested if isinstance(nested, dict) else payload
        error_type = _text(error.get("type"))
        if error_type == "error":  # the event's own type, in the flat event shape
            error_type = None
        code = _text(error.get("code"))
        status = event_status(error_type, code)
        return UpstreamError(
            kind_of(status, code),
            status,
            self.redact(str(error.get("message") or "the upstream stream failed")),
            error_type=error_type,
            code=code,
            param=_text(error.get("param")),
            request_id=request_id,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
