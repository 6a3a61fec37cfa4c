"""Helpers for gateway tests: upload streams, status details (images: support.images)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, results_pb2

# ``await start_gateway(**settings)`` (see conftest), for the tests' annotations.
from support.gateways import GatewayFactory as GatewayFactory

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway

CHUNK = 64 * 1024
# Distinctive, so a test can search logs and errors for it.
OPENAI_KEY = "sk-gatewaytest-SECRETKEY-0123456789abcdef"
NEWER_MODEL = "gpt-image-9"
"""A model the tests' emulator serves but the gateway's model table does not know, as
OpenAI serves a new model before the table lists it: what passes through unvalidated.
Any other unknown model the emulator refuses, as OpenAI does (404 model_not_found)."""


def chunks_of(role: int, data: bytes, index: int = 0) -> list[params_pb2.FileChunk]:
    return [
        params_pb2.FileChunk(role=role, image_index=index, data=data[i : i + CHUNK])
        for i in range(0, len(data), CHUNK)
    ]


@dataclass
class UploadStream:
    """Request messages that count how many the server pulled (async or plain iteration)."""

    messages: list[object]
    pulled: int = field(default=0)

    async def __aiter__(self) -> AsyncIterator[object]:
        for message in self:
            yield message

    def __iter__(self) -> Iterator[object]:
        for message in self.messages:
            self.pulled += 1
            yield message


async def sync_upload(gateway: Gateway, rpc: str, stream: UploadStream) -> grpc.RpcError | None:
    """Send an upload through the sync client: the call's error, or None if it succeeded.

    When a server ends a client-streaming call before the client has sent every
    message, grpc's asyncio client may report INTERNAL "Internal error from Core"
    instead of the server's status (grpc/grpc#36066; 34 of 2,000 such calls here, 0
    of 2,000 with the sync client), so tests of rejected uploads read the status here.
    In a thread, since the gateway serves from the test's event loop.
    """

    def call() -> grpc.RpcError | None:
        with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            method = getattr(images_service_pb2_grpc.ImagesServiceStub(channel), rpc)
            try:
                method(iter(stream), timeout=60)
            except grpc.RpcError as error:
                return error
        return None

    return await asyncio.to_thread(call)


async def rejected_upload(gateway: Gateway, rpc: str, stream: UploadStream) -> grpc.RpcError:
    """The gateway's status for an upload it rejects (read as :func:`sync_upload` says)."""
    error = await sync_upload(gateway, rpc, stream)
    assert error is not None, f"{rpc} succeeded, but the gateway should have rejected it"
    return error


def edit_requests(
    parameters: params_pb2.EditParameters,
    chunks: Iterable[params_pb2.FileChunk],
    request_type: type = pb.CreateImageEditRequest,
) -> UploadStream:
    return UploadStream(
        [request_type(parameters=parameters), *(request_type(chunk=c) for c in chunks)]
    )


def error_trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return None


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status details in the trailers")


def detail(error: grpc.aio.AioRpcError, kind: type) -> object | None:
    for packed in rich_status(error).details:
        message = kind()
        if packed.Unpack(message):
            return message
    return None


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    bad_request = detail(error, error_details_pb2.BadRequest)
    assert isinstance(bad_request, error_details_pb2.BadRequest), "no BadRequest detail"
    return {v.field: v.description for v in bad_request.field_violations}


async def trailer(call: object, key: str) -> str | None:
    metadata = await call.trailing_metadata()  # type: ignore[attr-defined]
    for name, value in metadata or ():
        if name == key:
            return str(value)
    return None


def assemble(
    events: list[object],
) -> tuple[dict[int, bytes], dict[tuple[int, int], bytes], results_pb2.ImagesResult]:
    """Final images, partial images and the result from a stream RPC's messages."""
    finals: dict[int, bytearray] = {}
    partials: dict[tuple[int, int], bytearray] = {}
    result = None
    for event in events:
        kind = event.WhichOneof("event")  # type: ignore[attr-defined]
        if kind == "result":
            assert result is None, "a second result"
            result = event.result  # type: ignore[attr-defined]
            continue
        assert result is None, "an image chunk after the result"
        chunk = event.image_chunk  # type: ignore[attr-defined]
        assert len(chunk.data) <= 1024 * 1024
        if chunk.HasField("partial_image_index"):
            target = partials.setdefault(
                (chunk.image_index, chunk.partial_image_index), bytearray()
            )
        else:
            target = finals.setdefault(chunk.image_index, bytearray())
        assert chunk.offset == len(target), "slices out of order"
        target += chunk.data
    assert result is not None, "the stream ended without a result"
    return (
        {k: bytes(v) for k, v in finals.items()},
        {k: bytes(v) for k, v in partials.items()},
        result,
    )


async def upstream_disconnected(emulator: Emulator) -> None:
    """Wait until the emulator saw the gateway abandon its first request (5 s at most)."""
    await emulator.journal.wait_for(
        lambda entries: entries[0].has_event("client_disconnected"), timeout_s=5
    )
