"""OpenAI's errors, as HTTP answers or SSE error events, into :class:`UpstreamError`.

Every message relayed from OpenAI (or a compatible server), and its ``code``, ``type``
and ``param``, is redacted here, before it can reach a caller or a log line: the
configured keys by their literal value, whatever their shape, and anything shaped
like an OpenAI key.

Everything taken from an error is bounded: the body is read up to a cap (OpenAI's
error JSON is a few hundred bytes; the rest is not read, and the connection is
closed rather than drained) and for a few seconds at most, only if it is not
content-encoded (the gateway asks for no encoding); the message, ``code``, ``type``
and ``param`` are cut (:data:`~imagegate_server.errors.MESSAGE_BYTES`,
:data:`~imagegate_server.errors.FIELD_BYTES`) and the upstream's request id is cut to
a short printable token, so that a status never outgrows gRPC's metadata limits.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import orjson

from imagegate_server.errors import FIELD_BYTES, UpstreamError, UpstreamErrorKind, clip, redact
from imagegate_server.upstream.retry import generated_nothing, retry_after_s

# An error body's status is known before its body: reading it longer than this only
# delays the caller's answer (a body that trickles in would hold the call).
ERROR_BODY_SECONDS = 5.0
# Request ids go into trailing metadata and logs: printable ASCII, short.
_REQUEST_ID_BYTES = 128
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")

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


# Azure OpenAI names a content-filter refusal its own ways. It is what OpenAI calls
# moderation_blocked, and a caller cannot choose which upstream its call lands on, so
# it gets that one reason (INVALID_ARGUMENT) whichever upstream refused.
_CONTENT_FILTER = frozenset({"contentFilter", "content_filter", "ResponsibleAIPolicyViolation"})
MODERATION_BLOCKED = "moderation_blocked"


def normalized_code(error: Mapping[str, Any]) -> str | None:
    """An error object's ``code``, as OpenAI would name it: Azure's content-filter
    codes (also when only its ``innererror`` says so) become ``moderation_blocked``;
    a bare HTTP status as the code (Azure's ``"429"``) becomes none, since the
    status says it already."""
    code = _text(error.get("code"))
    inner = error.get("innererror", error.get("inner_error"))
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    if code in _CONTENT_FILTER or inner_code in _CONTENT_FILTER:
        return MODERATION_BLOCKED
    if code is not None and code.isascii() and code.isdigit():
        return None
    return code


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


def request_id_of(headers: httpx.Headers) -> str | None:
    """The upstream's ``x-request-id``, as a short printable token (None: none)."""
    raw = headers.get("x-request-id")
    if raw is None:
        return None
    return _NOT_PRINTABLE.sub("", raw[: _REQUEST_ID_BYTES * 4])[:_REQUEST_ID_BYTES] or None


def is_encoded(headers: httpx.Headers) -> bool:
    """Whether the body has a content encoding (gzip, br...): the gateway asks for none."""
    codings = headers.get("content-encoding", "")
    return any(coding.strip().lower() not in ("", "identity") for coding in codings.split(","))


class ErrorDecoder:
    """Builds :class:`UpstreamError` from OpenAI's error shapes, redacting ``secrets``;
    reads at most ``max_body_bytes`` of an error body."""

    def __init__(self, secrets: Iterable[str], max_body_bytes: int = 64 * 1024) -> None:
        self._secrets = tuple(secret for secret in secrets if secret)
        self._max_body_bytes = max_body_bytes

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _field(self, text: str | None) -> str | None:
        """A short field (``code``, ``type``, ``param``) redacted like a message: an
        upstream may echo the key anywhere, and these reach ErrorInfo and BadRequest."""
        return None if text is None else clip(self.redact(text), FIELD_BYTES)

    async def from_response(self, response: httpx.Response) -> UpstreamError:
        """From an error response (read, up to the cap, and closed here)."""
        try:
            content = await self._body(response)
        finally:
            await response.aclose()
        try:
            error = orjson.loads(content).get("error")
        except (ValueError, AttributeError):
            error = None
        fields = error if isinstance(error, dict) else {}
        code = self._field(normalized_code(fields))
        return UpstreamError(
            kind_of(response.status_code, code),
            response.status_code,
            self.redact(
                str(fields.get("message") or f"the upstream answered HTTP {response.status_code}")
            ),
            error_type=self._field(_text(fields.get("type"))),
            code=code,
            param=self._field(_text(fields.get("param"))),
            request_id=request_id_of(response.headers),
            retry_after_s=retry_after_s(response.headers),
            generated_nothing=generated_nothing(response),
        )

    async def _body(self, response: httpx.Response) -> bytes:
        """Up to the cap of the body, what arrived of it in :data:`ERROR_BODY_SECONDS`;
        nothing of an encoded one (its status says enough)."""
        if is_encoded(response.headers):
            return b""
        content = bytearray()
        try:
            async with asyncio.timeout(ERROR_BODY_SECONDS):
                async for chunk in response.aiter_raw():
                    content += chunk[: self._max_body_bytes - len(content)]
                    if len(content) >= self._max_body_bytes:
                        break
        except (TimeoutError, httpx.HTTPError):
            pass  # what arrived is all there is to read
        return bytes(content)

    def from_event(self, payload: Mapping[str, Any], request_id: str | None) -> UpstreamError:
        """From an SSE ``error`` event: ``{"error": {...}}`` or the flat event shape."""
        nested = payload.get("error")
        error: Mapping[str, Any] = nested if isinstance(nested, dict) else payload
        error_type = self._field(_text(error.get("type")))
        if error_type == "error":  # the event's own type, in the flat event shape
            error_type = None
        code = self._field(normalized_code(error))
        status = event_status(error_type, code)
        return UpstreamError(
            kind_of(status, code),
            status,
            self.redact(str(error.get("message") or "the upstream stream failed")),
            error_type=error_type,
            code=code,
            param=self._field(_text(error.get("param"))),
            request_id=request_id,
        )


def _text(value: object) -> str | None:
    """A field of an error (``code``, ``type``, ``param``), cut; None when it is no text."""
    return clip(value, FIELD_BYTES) if isinstance(value, str) and value else None
