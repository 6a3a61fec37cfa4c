"""Server-sent events, as OpenAI streams image generations and edits.

OpenAI sends ``event:`` and ``data:`` lines separated by blank lines, and no
``[DONE]`` sentinel; this is the part of the SSE format it uses (multi-line data
joined by newlines, comments ignored).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Events from decoded lines (without their line endings), as they complete."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data))


# OpenAI names an error event's cause by code and type, not by HTTP status. These are
# the statuses the same errors carry as HTTP answers, so that a mid-stream error maps
# to the gRPC code its HTTP twin would (a content-policy rejection mid-stream is the
# caller's INVALID_ARGUMENT, not a retryable UNAVAILABLE).
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


def error_status(error_type: str | None, code: str | None) -> int:
    """The HTTP status OpenAI answers with for an error of this code (first) or type."""
    for name in (code, error_type):
        if name is not None and name in _STATUS_OF:
            return _STATUS_OF[name]
    if any(name and name.endswith("_user_error") for name in (code, error_type)):
        return 400
    return 500
