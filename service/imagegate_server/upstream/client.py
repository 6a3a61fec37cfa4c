""":class:`Upstream`: an :class:`ImagesRequest` sent to OpenAI (or the emulator) with
safe retries, and its reply read: the whole answer, or its events as they arrive.

One :class:`Upstream` is one endpoint with one key (:class:`UpstreamConfig`):
OpenAI (an organisation and project), an Azure OpenAI resource (its deployments,
:mod:`.azure`) or a compatible server. Every call takes an absolute deadline (the
caller's gRPC deadline or the configured upstream timeout, whichever is sooner, as
``loop.time()``). Sending, with the key and retries, is :mod:`.attempts`'; reading
the reply is :mod:`.reading`'; this module checks the reply's head, names the
upstream on every failure and ends the attempt's span with its outcome.

What an answer may hold is bounded by what the request asked for (:mod:`.bounds`):
its body is read as sent (the gateway asks for no content encoding and takes none)
and no further than the largest legitimate answer, each image is checked as it is
decoded, and an error body is read only up to a small cap. An answer past a bound is
an :class:`UpstreamProtocolError` naming its :class:`AnswerFault`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from imagegate_server.errors import (
    FieldViolation,
    UpstreamError,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegate_server.upstream import azure
from imagegate_server.upstream.answers import ImageEvents, ImageSink, Reply
from imagegate_server.upstream.attempts import Attempts
from imagegate_server.upstream.bounds import answer_bounds, check_head
from imagegate_server.upstream.config import UpstreamConfig
from imagegate_server.upstream.errors import request_id_of
from imagegate_server.upstream.observe import (
    Unobserved,
    Untraced,
    UpstreamObserver,
    UpstreamTracer,
)
from imagegate_server.upstream.pool import Pool
from imagegate_server.upstream.reading import read_answer, read_events
from imagegate_server.upstream.request import ImagesRequest


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
        self._owns_pool = pool is None
        self._pool = pool or Pool(config.max_connections, http2=config.http2)
        self._attempts = Attempts(config, self._observer, tracer or Untraced(), self._pool)

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> UpstreamConfig:
        return self._config

    @property
    def host(self) -> str:
        """The upstream's host (and port), for log lines: no path, no credentials."""
        parts = urlsplit(self._config.base_url.rstrip("/") + "/")
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
        name = self._config.name
        try:
            response, span = await self._attempts.send(request, deadline, retry)
        except UpstreamFailure as failure:
            failure.upstream = name
            raise
        request_id = request_id_of(response.headers)
        try:
            bounds = answer_bounds(
                request.params,
                stream=request.stream,
                unknown_model_bytes=self._config.unknown_model_answer_bytes,
            )
            check_head(response.headers, bounds, request_id)
            if request.stream:
                events = read_events(response, request_id, self._attempts.errors, bounds)
                yield ImageEvents(events, request_id, name)
            else:
                yield await read_answer(response, request_id, deadline, bounds, sink, name)
        except BaseException as exc:
            cause = _broken_off(exc)
            if cause is not None:
                span.failed(cause)
            if isinstance(exc, UpstreamProtocolError):
                self._observer.upstream_answer_rejected(exc.fault.value)
            if isinstance(exc, UpstreamFailure) and exc.upstream is None:
                exc.upstream = name
            raise
        finally:
            await response.aclose()
            span.end()


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
