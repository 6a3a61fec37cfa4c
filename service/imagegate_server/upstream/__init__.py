"""The upstream: OpenAI's Images API (or any compatible server) in operation terms.

``async with upstream.send(ImagesRequest(operation, params, files, stream), deadline)
as reply`` gives an :class:`ImagesAnswer` or :class:`ImageEvents`, or raises a
classified :class:`~imagegate_server.errors.UpstreamFailure`. Everything about HTTP
lives behind it: paths, JSON or multipart, form encoding, file parts (``wire``), SSE
framing and event JSON (``sse``, ``events``), error bodies and statuses (``errors``),
safe retries (``retry``), the connections (``pool``: aiohttp's under httpx, in
``transport``), the attempt loop and the key (``attempts``), reading the reply
(``reading``); metrics and traces watch through ``observe``. Nothing here knows
about gRPC; nothing above it knows about HTTP.
"""

from imagegate_server.upstream.answers import (
    SUNK,
    ImageEvent,
    ImageEvents,
    ImagesAnswer,
    ImageSink,
    Reply,
)
from imagegate_server.upstream.client import Upstream
from imagegate_server.upstream.config import UpstreamConfig
from imagegate_server.upstream.observe import AttemptSpan, UpstreamObserver, UpstreamTracer
from imagegate_server.upstream.pool import POOL_SHARD_CONNECTIONS, Pool
from imagegate_server.upstream.request import FileRole, ImagesRequest, UploadFile
from imagegate_server.upstream.retry import RetryPolicy

__all__ = [
    "POOL_SHARD_CONNECTIONS",
    "SUNK",
    "AttemptSpan",
    "FileRole",
    "ImageEvent",
    "ImageEvents",
    "ImageSink",
    "ImagesAnswer",
    "ImagesRequest",
    "Pool",
    "Reply",
    "RetryPolicy",
    "UploadFile",
    "Upstream",
    "UpstreamConfig",
    "UpstreamObserver",
    "UpstreamTracer",
]
