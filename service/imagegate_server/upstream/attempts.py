"""The attempt loop: one :class:`ImagesRequest` sent to an upstream, with safe
retries, until an answer with a status under 400 (its body unread) or a classified
:class:`~imagegate_server.errors.UpstreamFailure`.

The key is added to requests here and nowhere else (as a bearer token, or Azure's
header), with OpenAI's organisation and project; Azure's deployments get their own
URLs (:mod:`.azure`). Only failures that billed nothing are retried (no connection,
429, ``x-should-retry``: :mod:`.retry`), with backoff, and no attempt or backoff
runs past the call's absolute deadline (``loop.time()``). Every attempt is counted
(:class:`UpstreamObserver`) and gets a span (:class:`UpstreamTracer`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import httpx

from imagegate_server import __version__
from imagegate_server.errors import UpstreamFailure, UpstreamTimeout, UpstreamUnreachable
from imagegate_server.models import Operation
from imagegate_server.upstream import azure, wire
from imagegate_server.upstream.config import UpstreamConfig
from imagegate_server.upstream.errors import ErrorDecoder, request_id_of
from imagegate_server.upstream.observe import AttemptSpan, UpstreamObserver, UpstreamTracer
from imagegate_server.upstream.pool import Pool
from imagegate_server.upstream.request import ImagesRequest
from imagegate_server.upstream.retry import is_retryable_response

# The name the retry lines have always had: operators' log filters (and tests) use it.
log = logging.getLogger("imagegate_server.upstream.client")

# A timer may fire a hair before its time: within this of the deadline, it was the deadline.
_DEADLINE_SLACK_S = 0.01


class Attempts:
    """Sends requests to one upstream (its :class:`~.client.Upstream` owns it)."""

    def __init__(
        self,
        config: UpstreamConfig,
        observer: UpstreamObserver,
        tracer: UpstreamTracer,
        pool: Pool,
    ) -> None:
        self._config = config
        self._observer = observer
        self._tracer = tracer
        self._pool = pool
        base_url = config.base_url.rstrip("/") + "/"
        key = config.api_key.get_secret_value()
        self.errors = ErrorDecoder([key], config.error_body_bytes)
        """Error answers and error events into :class:`UpstreamError`, the key redacted."""
        self._urls = {op: httpx.URL(base_url + path) for op, path in wire.PATHS.items()}
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

    async def send(
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
                    error = await self.errors.from_response(response)
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
