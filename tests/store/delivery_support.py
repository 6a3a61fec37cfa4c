"""Stored delivery end to end: a real gateway in front of a real emulator, storing to a
real local directory or a real S3-compatible server, called over gRPC by clients of
a clients file, its links fetched with a plain HTTP client."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import tomli_w
from google.rpc import error_details_pb2, status_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import (
    images_service_pb2_grpc,
    params_pb2,
    quota_pb2,
    quota_pb2_grpc,
    results_pb2,
    stored_pb2,
    stored_pb2_grpc,
)
from weed_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer

from imagegate_server.clients.tokens import generate
from imagegate_server.gateway.server import Gateway

KEY = "sk-deliverytest-SECRET-0123456789abcdef"
NEWER_MODEL = "gpt-image-9"
"""Served by the tests' emulator, unknown to the gateway's model table: no size bound."""
STORED = params_pb2.DELIVERY_STORED
CHUNK = 64 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUCKET = "results"


def clients_file(directory: Path, **clients: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """A clients file with these clients (name -> policy fields), one token each:
    its path, and each client's token."""
    document: dict[str, Any] = {"clients": {}}
    tokens: dict[str, str] = {}
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    for name, policy in clients.items():
        token = generate()
        tokens[name] = token.token
        entry = {"id": token.token_id, "sha256": token.sha256, "created": created}
        document["clients"][name] = {**policy, "tokens": [entry]}
    path = directory / "clients.toml"
    path.write_bytes(tomli_w.dumps(document).encode())
    return path, tokens


@dataclass
class Caller:
    """One client's calls to a gateway (its token in every call's metadata)."""

    channel: grpc.aio.Channel
    token: str | None
    images: images_service_pb2_grpc.ImagesServiceStub = field(init=False)
    quotas: quota_pb2_grpc.QuotaServiceStub = field(init=False)
    stored: stored_pb2_grpc.StoredImagesServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.images = images_service_pb2_grpc.ImagesServiceStub(self.channel)
        self.quotas = quota_pb2_grpc.QuotaServiceStub(self.channel)
        self.stored = stored_pb2_grpc.StoredImagesServiceStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    async def generate(self, **parameters: Any) -> results_pb2.ImagesResult:
        request = pb.CreateImageRequest(parameters=generation(**parameters))
        reply = await self.images.CreateImage(request, metadata=self.metadata, timeout=120)
        return reply.result

    async def stream(self, **parameters: Any) -> list[pb.CreateImageStreamResponse]:
        request = pb.CreateImageStreamRequest(parameters=generation(**parameters))
        call = self.images.CreateImageStream(request, metadata=self.metadata, timeout=120)
        return [message async for message in call]

    async def edit(self, image: bytes, *, stream: bool = False, **parameters: Any) -> Any:
        parameters.setdefault("prompt", "add a moon")
        edit = params_pb2.EditParameters(images=[params_pb2.FileInfo()], **parameters)
        kind = pb.CreateImageEditStreamRequest if stream else pb.CreateImageEditRequest
        messages = [kind(parameters=edit)]
        for offset in range(0, len(image), CHUNK):
            piece = image[offset : offset + CHUNK]
            chunk = params_pb2.FileChunk(role=params_pb2.FILE_ROLE_IMAGE, data=piece)
            messages.append(kind(chunk=chunk))

        async def requests() -> AsyncIterator[Any]:
            for message in messages:
                yield message

        if stream:
            call = self.images.CreateImageEditStream(
                requests(), metadata=self.metadata, timeout=120
            )
            return [message async for message in call]
        reply = await self.images.CreateImageEdit(requests(), metadata=self.metadata, timeout=120)
        return reply.result

    async def quota(self) -> quota_pb2.GetQuotaResponse:
        return await self.quotas.GetQuota(
            quota_pb2.GetQuotaRequest(), metadata=self.metadata, timeout=30
        )

    async def relink(self, reference: str) -> results_pb2.StoredImage:
        reply = await self.stored.GetStoredImage(
            stored_pb2.GetStoredImageRequest(object=reference), metadata=self.metadata, timeout=30
        )
        return reply.image


def generation(**parameters: Any) -> params_pb2.GenerationParameters:
    parameters.setdefault("prompt", "a lighthouse at dusk")
    parameters.setdefault("model", "gpt-image-2")
    return params_pb2.GenerationParameters(**parameters)


def target(gateway: Gateway) -> str:
    return f"127.0.0.1:{gateway.port}"


async def fetch(url: str) -> httpx.Response:
    """A plain GET, as a browser or another service would make it."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no status details")


def detail(error: grpc.aio.AioRpcError, kind: type[Any]) -> Any:
    for packed in status_of(error).details:
        found = kind()
        if packed.Unpack(found):
            return found
    raise AssertionError(f"no {kind.__name__}")


def error_reason(error: grpc.aio.AioRpcError) -> str:
    info: error_details_pb2.ErrorInfo = detail(error, error_details_pb2.ErrorInfo)
    return info.reason


def store_overrides(backend: str, tmp_path: Path, weed: WeedServer | None) -> dict[str, Any]:
    """A gateway's store settings on ``backend`` (as :func:`store_settings` makes them,
    with sweeping off unless a test turns it on)."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "store_backend": backend,
        "store_http_port": 0,
        "store_sweep": False,
    }
    if backend == "s3":
        assert weed is not None
        values.update(
            store_s3_bucket=BUCKET,
            store_s3_prefix=f"t-{secrets.token_hex(4)}/",
            store_s3_endpoint=weed.endpoint,
            store_s3_region=REGION,
            store_s3_access_key_id=ACCESS_KEY,
            store_s3_secret_access_key=SECRET_KEY,
        )
    return values
