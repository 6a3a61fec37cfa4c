"""The two paths under comparison: the gateway over gRPC, the emulator over httpx.

Both paths do comparable work per call: the gRPC client gets image bytes in the
protobuf, the direct client decodes the base64 of OpenAI's JSON into bytes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import httpx
from imagegate.v1 import images_service_pb2_grpc

from imagegate_server.bench.procs import API_KEY
from imagegate_server.upstream import POOL_SHARD_CONNECTIONS

if TYPE_CHECKING:
    # Only in the stubs: the async flavour the constructor returns for an aio channel.
    from imagegate.v1.images_service_pb2_grpc import ImagesServiceAsyncStub

UPLOAD_CHUNK = 64 * 1024
# Results up to the gateway's unary limit (64 MiB) plus framing.
_MAX_MESSAGE = 80 * 1024 * 1024
# Streams one connection carries before the next channel is used; servers commonly
# advertise 100 concurrent streams per HTTP/2 connection.
STREAMS_PER_CHANNEL = 100


class GrpcPool:
    """Several channels (each its own TCP connection) used round robin."""

    def __init__(self, target: str, channels: int = 1) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            # Without a local subchannel pool, channels to one target share one
            # connection, and "several channels" would be one in disguise.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        self._channels = [
            grpc.aio.insecure_channel(target, options=options) for _ in range(max(1, channels))
        ]
        stubs: list[ImagesServiceAsyncStub] = [
            images_service_pb2_grpc.ImagesServiceStub(c) for c in self._channels
        ]
        self._stubs = itertools.cycle(stubs)

    def channel(self) -> grpc.aio.Channel:
        return self._channels[0]

    def stub(self) -> ImagesServiceAsyncStub:
        return next(self._stubs)

    async def ready(self, timeout_s: float = 10.0) -> None:
        for channel in self._channels:
            await asyncio.wait_for(channel.channel_ready(), timeout_s)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(None)


def direct_client(base_url: str, max_connections: int, timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        headers={"authorization": f"Bearer {API_KEY}"},
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        timeout=httpx.Timeout(timeout_s, connect=timeout_s),
    )


class DirectPool:
    """Direct clients used round robin, each pooling at most ``POOL_SHARD_CONNECTIONS``.

    Sharded as the gateway shards httpcore for HTTP/2: httpcore's pool scan grows with
    the square of its size, so one pool of thousands of held connections would slow
    the baseline down for a reason the gateway avoids (its HTTP/1.1 pool is aiohttp's).
    """

    def __init__(self, base_url: str, max_connections: int, timeout_s: float) -> None:
        shards = -(-max_connections // POOL_SHARD_CONNECTIONS)
        per_shard = -(-max_connections // shards)
        self._clients = [direct_client(base_url, per_shard, timeout_s) for _ in range(shards)]
        self._next = itertools.cycle(self._clients)

    def client(self) -> httpx.AsyncClient:
        return next(self._next)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def decode_images(payload: dict[str, Any]) -> list[bytes]:
    """The images of an OpenAI images answer; an answer without any is an error."""
    images = [base64.b64decode(item["b64_json"]) for item in payload.get("data") or ()]
    if not images or not all(images):
        raise ValueError("the answer holds no image")
    return images


def upload_chunks(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    for offset in range(0, len(data), UPLOAD_CHUNK):
        yield view[offset : offset + UPLOAD_CHUNK]


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of an SSE answer, as they arrive."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            text = "\n".join(data)
            data = []
            if text != "[DONE]":
                yield json.loads(text)


@dataclass
class Pair:
    """The two clients of one scenario phase."""

    grpc: GrpcPool
    http: httpx.AsyncClient

    async def close(self) -> None:
        await self.grpc.close()
        await self.http.aclose()
