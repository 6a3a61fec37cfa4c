"""One shared ``httpx.AsyncClient`` to OpenAI (or the emulator), with safe retries.

The OpenAI key is added to requests here and nowhere else. Every call takes an
absolute deadline (the caller's gRPC deadline or the configured upstream timeout,
whichever is sooner, as ``loop.time()``); no attempt or backoff runs past it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
from pydantic import SecretStr

from imagegate_server import __version__
from imagegate_server.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegate_server.upstream.retry import RetryPolicy, is_retryable_response, retry_after_s
from imagegate_server.upstream.sse import ServerSentEvent, iter_events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamConfig:
    base_url: str
    api_key: SecretStr
    organization: str | None = None
    project: str | None = None
    connect_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(2, 0.5, 20.0))
    max_connections: int = 4096
    http2: bool = False


@dataclass(frozen=True)
class FilePart:
    """A multipart file; ``open`` returns it rewound, so a retry resends all of it."""

    field: str
    filename: str
    content_type: str
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class Body:
    """An upstream request body: JSON, or multipart form fields plus files."""

    json: dict[str, Any] | None = None
    form: dict[str, str | list[str]] = field(default_factory=dict)
    files: list[FilePart] = field(default_factory=list)


@dataclass(frozen=True)
class Reply:
    """A successful non-streaming answer."""

    payload: dict[str, Any]
    request_id: str | None


@dataclass
class EventStream:
    """A successful streaming answer: SSE events as they arrive."""

    events: AsyncIterator[ServerSentEvent]
    request_id: str | None


# httpcore's pool scans all of its connections on every request event, so its cost
# grows with the square of the pool size (encode/httpcore#1035): thousands of
# long-held calls in one pool burn the CPU in that scan. Pools of this size, used
# round-robin, keep the scan short while the total stays max_connections.
POOL_SHARD_CONNECTIONS = 256
# A timer may fire a hair before its time: within this of the deadline, it was the deadline.
_DEADLINE_SLACK_S = 0.01


class Upstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self._config = config
        shards = max(1, -(-config.max_connections // POOL_SHARD_CONNECTIONS))
        per_shard = -(-config.max_connections // shards)
        self._clients = [
            httpx.AsyncClient(
                base_url=config.base_url.rstrip("/") + "/",
                limits=httpx.Limits(
                    max_connections=per_shard,
                    max_keepalive_connections=per_shard,
                    keepalive_expiry=30.0,
                ),
                http2=config.http2,
                headers={"user-agent": f"imagegate/{__version__}"},
                follow_redirects=False,
            )
            for _ in range(shards)
        ]
        self._next = itertools.cycle(self._clients)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def call(self, path: str, body: Body, deadline: float) -> Reply:
        """POST and return the JSON answer; errors raise :class:`UpstreamFailure`."""
        response = await self._send(path, body, deadline)
        request_id = response.headers.get("x-request-id")
        try:
            async with asyncio.timeout_at(deadline):
                content = await response.aread()
        except TimeoutError:
            raise UpstreamTimeout("the upstream did not finish in time", request_id) from None
        except httpx.TransportError:
            raise UpstreamUnreachable("the upstream connection broke", request_id) from None
        finally:
            await response.aclose()
        try:
            payload = json.loads(content)
        except ValueError:
            raise UpstreamProtocolError("the upstream sent invalid JSON", request_id) from None
        if not isinstance(payload, dict):
            raise UpstreamProtocolError("the upstream sent unexpected JSON", request_id)
        return Reply(payload, request_id)

    @asynccontextmanager
    async def stream(self, path: str, body: Body, deadline: float) -> AsyncIterator[EventStream]:
        """POST with ``stream=true`` and yield the SSE events as they arrive."""
        response = await self._send(path, body, deadline)
        request_id = response.headers.get("x-request-id")
        try:
            yield EventStream(self._events(response, request_id), request_id)
        finally:
            await response.aclose()

    async def _events(
        self, response: httpx.Response, request_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in iter_events(response.aiter_lines()):
                yield event
        except httpx.TimeoutException:
            raise UpstreamTimeout("the upstream stream stalled", request_id) from None
        except httpx.TransportError:
            raise UpstreamUnreachable("the upstream stream broke", request_id) from None

    async def _send(self, path: str, body: Body, deadline: float) -> httpx.Response:
        """Send with retries; return a response with status < 400, body unread."""
        loop = asyncio.get_running_loop()
        policy = self._config.retry
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout("the deadline passed before the upstream answered")
            try:
                response = await self._attempt(path, body, remaining)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                # Nothing reached OpenAI: safe to retry. A connect or pool wait cut
                # short by our own deadline is that deadline passing; one that ran
                # out of its own (connect) time is an upstream that cannot be reached.
                if deadline - loop.time() < _DEADLINE_SLACK_S:
                    raise UpstreamTimeout("no upstream connection before the deadline") from None
                failure: Exception = UpstreamUnreachable("could not connect to the upstream")
                delay = policy.backoff(attempt)
            except httpx.TimeoutException:
                raise UpstreamTimeout("the upstream did not answer in time") from None
            except httpx.TransportError:
                # The body may have reached the model: retrying could bill twice.
                raise UpstreamUnreachable("the upstream connection broke") from None
            else:
                if response.status_code < 400:
                    return response
                error = await _error_from(response)
                if not is_retryable_response(response, error.code):
                    raise error
                if error.retry_after_s is not None and error.retry_after_s > policy.backoff_max_s:
                    raise error  # OpenAI asks for a longer wait than we may spend
                failure = error
                delay = (
                    policy.backoff(attempt) if error.retry_after_s is None else error.retry_after_s
                )
            if attempt > policy.max_retries or loop.time() + delay >= deadline:
                raise failure
            log.info(
                "retrying upstream call",
                extra={"path": path, "attempt": attempt + 1, "delay_s": round(delay, 3)},
            )
            await asyncio.sleep(delay)

    async def _attempt(self, path: str, body: Body, remaining: float) -> httpx.Response:
        config = self._config
        client = next(self._next)
        headers = {"authorization": f"Bearer {config.api_key.get_secret_value()}"}
        if config.organization:
            headers["openai-organization"] = config.organization
        if config.project:
            headers["openai-project"] = config.project
        timeout = httpx.Timeout(remaining, connect=min(config.connect_timeout_s, remaining))
        if body.json is not None:
            request = client.build_request(
                "POST", path, json=body.json, headers=headers, timeout=timeout
            )
            return await client.send(request, stream=True)
        # The uploads own their spooled files; open() rewinds them for each attempt.
        files = [
            (part.field, (part.filename, part.open(), part.content_type)) for part in body.files
        ]
        request = client.build_request(
            "POST", path, data=body.form, files=files, headers=headers, timeout=timeout
        )
        return await client.send(request, stream=True)


async def _error_from(response: httpx.Response) -> UpstreamError:
    """An :class:`UpstreamError` from an error response (read and closed here)."""
    try:
        content = await response.aread()
    except httpx.HTTPError:
        content = b""
    finally:
        await response.aclose()
    message = f"the upstream answered HTTP {response.status_code}"
    error_type = code = param = None
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        error_type = _text(error.get("type"))
        code = _text(error.get("code"))
        param = _text(error.get("param"))
    return UpstreamError(
        response.status_code,
        message,
        error_type=error_type,
        code=code,
        param=param,
        request_id=response.headers.get("x-request-id"),
        retry_after_s=retry_after_s(response.headers),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
