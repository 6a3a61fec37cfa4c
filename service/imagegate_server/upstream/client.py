""":class:`Upstream`: an :class:`ImagesRequest` sent to OpenAI (or the emulator) with
safe retries, and its reply read: the whole answer, or its events as they arrive.

One :class:`Upstream` is one endpoint with one key: OpenAI (an organisation and
project), an Azure OpenAI resource (its deployments, :mod:`.azure`) or a compatible
server. The key is added to requests here and nowhere else. Every call takes an
absolute deadline (the caller's gRPC deadline or the configured upstream timeout,
whichever is sooner, as ``loop.time()``); no attempt or backoff runs past it.

What an answer may hold is bounded by what the request asked for (:mod:`.bounds`):
its body is read as sent (the gateway asks for no content encoding and takes none)
and no further than the largest legitimate answer, each image is checked as it is
decoded, and an error body is read only up to a small cap. An answer past a bound is
an :class:`UpstreamProtocolError` naming its :class:`AnswerFault`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from imagegate_server import __version__
from imagegate_server.errors import (
    FieldViolation,
    UpstreamError,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegate_server.models import Operation
from imagegate_server.upstream import azure, wire
from imagegate_server.upstream.answers import (
    ImageEvent,
    ImageEvents,
    ImagesAnswer,
    ImageSink,
    Reply,
)
from imagegate_server.upstream.azure import AzureConfig
from imagegate_server.upstream.bounds import AnswerBounds, answer_bounds, bounded, check_head
from imagegate_server.upstream.decoding import AnswerReader, aligned_images
from imagegate_server.upstream.errors import ErrorDecoder, request_id_of
from imagegate_server.upstream.events import image_events
from imagegate_server.upstream.observe import (
    AttemptSpan,
    Unobserved,
    Untraced,
    UpstreamObserver,
    UpstreamTracer,
)
from imagegate_server.upstream.pool import Pool
from imagegate_server.upstream.request import ImagesRequest
from imagegate_server.upstream.retry import RetryPolicy, is_retryable_response

log = logging.getLogger(__name__)


Kind = Literal["openai", "azure", "compatible"]


@dataclass(frozen=True)
class UpstreamConfig:
    base_url: str
    """OpenAI's or a compatible server's ``.../v1``; for Azure, the resource endpoint."""
    api_key: SecretStr
    name: str = "default"
    """How logs, metrics, spans, results and the clients file's policies name it."""
    kind: Kind = "openai"
    azure: AzureConfig | None = None
    """Azure's routes, deployments and authentication (kind ``azure`` only)."""
    organization: str | None = None
    project: str | None = None
    connect_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(2, 0.5, 20.0))
    max_connections: int = 4096
    http2: bool = False
    unknown_model_answer_bytes: int = 128 * 1024 * 1024
    """The largest answer (and image) taken for a model the model table does not know."""
    error_body_bytes: int = 64 * 1024
    """How much of an error answer's body is read; the rest is not."""


# A timer may fire a hair before its time: within this of the deadline, it was the deadline.
_DEADLINE_SLACK_S = 0.01


class Upstream:
    def __init__(
        self,
        config: UpstreamConfig,
        observer: UpstreamObserver | None = None,
        tracer: UpstreamTracer | None = None,
        pool: Pool | None = None,
    ) -> None:
        """``pool``: connections shared with other upstreams (their owner closes it);
        None: a pool of ``config.max_connections`` of its own."""
        self._config = config
        self._observer = observer or Unobserved()
        self._tracer = tracer or Untraced()
        self._base_url = config.base_url.rstrip("/") + "/"
        key = config.api_key.get_secret_value()
        self._errors = ErrorDecoder([key], config.error_body_bytes)
        self._owns_pool = pool is None
        self._pool = pool or Pool(config.max_connections, http2=config.http2)
        self._urls = {op: httpx.URL(self._base_url + path) for op, path in wire.PATHS.items()}
        self._azure_urls: dict[tuple[Operation, str], httpx.URL] = {}
        headers = {"user-agent": f"imagegate/{__version__}", "accept": "application/json"}
        if config.azure is not None:
            headers.update(azure.auth_headers(config.azure, key))
        else:
            headers["authorization"] = f"Bearer {key}"
        if config.organization:
            headers["openai-organization"] = config.organization
        if config.project:
            headers["openai-project"] = config.project
        self._headers = headers

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> UpstreamConfig:
        return self._config

    @property
    def host(self) -> str:
        """The upstream's host (and port), for log lines: no path, no credentials."""
        parts = urlsplit(self._base_url)
        return f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"

    def unsupported(self, request: ImagesRequest) -> list[FieldViolation]:
        """What of ``request`` this upstream documents it does not take (nothing is
        sent for it): Azure's limits; nothing for OpenAI and compatible servers."""
        if self._config.azure is None:
            return []
        return azure.violations(request.operation, request.params)

    async def aclose(self) -> None:
        if self._owns_pool:
            await self._pool.aclose()

    @asynccontextmanager
    async def send(
        self,
        request: ImagesRequest,
        deadline: float,
        sink: ImageSink | None = None,
        *,
        retry: bool = True,
    ) -> AsyncIterator[Reply]:
        """Send ``request``; yield the whole answer, or its events when it streams.

        ``sink``: where a whole answer's images go as they are decoded (the answer
        then holds :data:`~imagegate_server.upstream.answers.SUNK` in their places);
        a streamed answer's events carry their images whatever it is.

        Errors raise :class:`UpstreamFailure` subclasses, classified, naming this
        upstream. Failures that billed nothing are retried here with backoff, unless
        ``retry`` is False: then the first one is raised at once (its
        ``generated_nothing`` says whether another upstream may be asked). Leaving
        the block closes the response (and so aborts a stream still running).
        """
        try:
            response, span = await self._send(request, deadline, retry)
        except UpstreamFailure as failure:
            failure.upstream = self._config.name
            raise
        request_id = request_id_of(response.headers)
        try:
            bounds = answer_bounds(
                request.params,
                stream=request.stream,
                unknown_model_bytes=self._config.unknown_model_answer_bytes,
            )
            check_head(response.headers, bounds, request_id)
            name = self._config.name
            if request.stream:
                yield ImageEvents(self._events(response, request_id, bounds), request_id, name)
            else:
                yield await self._answer(response, request_id, deadline, bounds, sink)
        except BaseException as exc:
            cause = _broken_off(exc)
            if cause is not None:
                span.failed(cause)
            if isinstance(exc, UpstreamProtocolError):
                self._observer.upstream_answer_rejected(exc.fault.value)
            if isinstance(exc, UpstreamFailure) and exc.upstream is None:
                exc.upstream = self._config.name
            raise
        finally:
            await response.aclose()
            span.end()

    async def _answer(
        self,
        response: httpx.Response,
        request_id: str | None,
        deadline: float,
        bounds: AnswerBounds,
        sink: ImageSink | None,
    ) -> ImagesAnswer:
        reader = AnswerReader(request_id, bounds.images, sink)
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in bounded(response.aiter_raw(), bounds.body_bytes, request_id):
                    reader.feed(chunk)
                    if sink is not None:
                        await sink.drain()
        except TimeoutError:
            raise UpstreamTimeout(
                "the upstream did not finish in time", request_id, may_have_billed=True
            ) from None
        except httpx.TransportError:
            raise UpstreamUnreachable(
                "the upstream connection broke", request_id, may_have_billed=True
            ) from None
        payload, images = reader.finish()
        aligned = aligned_images(payload, images, request_id, bounds.final_images)
        return ImagesAnswer(payload, aligned, request_id, self._config.name)

    async def _events(
        self, response: httpx.Response, request_id: str | None, bounds: AnswerBounds
    ) -> AsyncIterator[ImageEvent]:
        body = bounded(response.aiter_raw(), bounds.body_bytes, request_id)
        try:
            async for event in image_events(body, request_id, self._errors, bounds):
                yield event
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                "the upstream stream stalled", request_id, may_have_billed=True
            ) from None
        except httpx.TransportError:
            raise UpstreamUnreachable(
                "the upstream stream broke", request_id, may_have_billed=True
            ) from None

    async def _send(
        self, request: ImagesRequest, deadline: float, retry: bool
    ) -> tuple[httpx.Response, AttemptSpan]:
        """Send (with retries, when ``retry``); return a response with status < 400,
        body unread, and the span of its attempt (to end once the response is done
        with)."""
        loop = asyncio.get_running_loop()
        config = self._config
        policy = config.retry
        model = str(request.params.get("model", ""))
        url, request = self._target(request)
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout("the deadline passed before the upstream answered")
            began = loop.time()
            span = self._tracer.attempt(
                request.operation.value, model, str(url), attempt - 1, config.name, config.kind
            )
            handed_over = False  # the span goes with the response, to end with it
            try:
                try:
                    response = await self._attempt(request, url, remaining, span.headers())
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                    self._attempted(span, model, "connect_error", began)
                    # Nothing reached OpenAI: safe to retry. A connect or pool wait cut
                    # short by our own deadline is that deadline passing; one that ran
                    # out of its own (connect) time is an upstream that cannot be reached.
                    if deadline - loop.time() < _DEADLINE_SLACK_S:
                        raise UpstreamTimeout(
                            "no upstream connection before the deadline"
                        ) from None
                    failure: UpstreamFailure = UpstreamUnreachable(
                        "could not connect to the upstream", generated_nothing=True
                    )
                    delay, cause = policy.backoff(attempt), "connect"
                except httpx.TimeoutException:
                    self._attempted(span, model, "timeout", began)
                    raise UpstreamTimeout(
                        "the upstream did not answer in time", may_have_billed=True
                    ) from None
                except httpx.TransportError:
                    self._attempted(span, model, "reset", began)
                    # The body may have reached the model: retrying could bill twice.
                    raise UpstreamUnreachable(
                        "the upstream connection broke", may_have_billed=True
                    ) from None
                except asyncio.CancelledError:
                    span.failed("cancelled")
                    raise
                else:
                    self._observer.upstream_request(
                        config.name, model, response.status_code, loop.time() - began
                    )
                    span.answered(response.status_code, request_id_of(response.headers))
                    if response.status_code < 400:
                        handed_over = True
                        return response, span
                    error = await self._errors.from_response(response)
                    if not retry or not is_retryable_response(response, error.code):
                        raise error
                    if (
                        error.retry_after_s is not None
                        and error.retry_after_s > policy.backoff_max_s
                    ):
                        raise error  # OpenAI asks for a longer wait than we may spend
                    failure = error
                    delay = (
                        policy.backoff(attempt)
                        if error.retry_after_s is None
                        else error.retry_after_s
                    )
                    cause = "rate_limited" if response.status_code == 429 else "should_retry"
            finally:
                if not handed_over:
                    span.end()
            if not retry or attempt > policy.max_retries or loop.time() + delay >= deadline:
                raise failure
            self._observer.upstream_retry(config.name, cause)
            log.info(
                "retrying upstream call",
                extra={
                    "upstream": config.name,
                    "path": wire.path_of(request),
                    "attempt": attempt + 1,
                    "delay_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)

    def _attempted(self, span: AttemptSpan, model: str, failure: str, began: float) -> None:
        """An attempt failed without an HTTP answer: count it and say so on its span."""
        seconds = asyncio.get_running_loop().time() - began
        self._observer.upstream_request(self._config.name, model, failure, seconds)
        span.failed(failure)

    def _target(self, request: ImagesRequest) -> tuple[httpx.URL, ImagesRequest]:
        """Where ``request`` goes, and what it sends there: for Azure, the model's
        deployment's URL, with the deployment as the body's ``model``."""
        config = self._config.azure
        if config is None:
            return self._urls[request.operation], request
        deployment = config.deployments[str(request.params.get("model", ""))]
        key = (request.operation, deployment)
        url = self._azure_urls.get(key)
        if url is None:  # one per operation and deployment of the upstreams file
            path = wire.path_of(request)
            url = self._azure_urls[key] = httpx.URL(
                azure.url(self._config.base_url, config, path, deployment)
            )
        return url, replace(request, params={**request.params, "model": deployment})

    async def _attempt(
        self,
        request: ImagesRequest,
        url: httpx.URL,
        remaining: float,
        trace_headers: dict[str, str],
    ) -> httpx.Response:
        timeout = httpx.Timeout(remaining, connect=min(self._config.connect_timeout_s, remaining))
        headers = {**self._headers, **trace_headers} if trace_headers else self._headers
        extensions = {"timeout": timeout.as_dict()}
        body = wire.json_body(request)
        if body is not None:
            built = httpx.Request("POST", url, json=body, headers=headers, extensions=extensions)
        else:
            built = httpx.Request(
                "POST",
                url,
                data=wire.form_fields(request),
                files=wire.file_parts(request.files),
                headers=headers,
                extensions=extensions,
            )
        return await self._pool.send(built)


def _broken_off(exc: BaseException) -> str | None:
    """How an answer that had begun broke off, for its attempt's span; None for an
    exception that is not about the HTTP exchange (the caller's own handling)."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnreachable):
        return "reset"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol_error"
    if isinstance(exc, UpstreamError):
        return "stream_error"  # an error event in a stream that began well
    return None
