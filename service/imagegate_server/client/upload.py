"""The request stream of edits and variations: parameters first, then file chunks.

Each file is declared in the parameters (filename, content type from its magic
bytes, size) so the gateway can reject an oversized or mistyped file before any
byte is sent and notice a truncated upload; its bytes then follow in 64 KiB
chunks, the size the contract recommends. Files are sent one after the other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.imageformat import sniff_format

CHUNK_BYTES = 64 * 1024
# The gateway's go-ahead for the file chunks, a response header (params.proto, FileChunk).
UPLOAD_ACCEPTED = "x-imagegate-upload"
_MAX_FILENAME_BYTES = 255
# The gateway accepts these; anything else is left undeclared so its magic-byte
# check produces the authoritative error.
_UPLOAD_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

Request = TypeVar("Request")


class UploadError(Exception):
    """A local file that cannot be uploaded (missing, unreadable, empty)."""


@dataclass(frozen=True)
class Upload:
    """One local file and where it goes in the request."""

    path: Path
    role: params_pb2.FileRole.ValueType
    image_index: int
    info: params_pb2.FileInfo

    @property
    def size(self) -> int:
        return self.info.size_bytes


def declare(
    path: str | os.PathLike[str],
    role: params_pb2.FileRole.ValueType = params_pb2.FILE_ROLE_IMAGE,
    image_index: int = 0,
) -> Upload:
    """Checks that ``path`` is readable now, so a bad path fails before the call starts."""
    file_path = Path(path)
    try:
        with file_path.open("rb") as handle:
            head = handle.read(16)
            size = os.fstat(handle.fileno()).st_size
    except OSError as error:
        raise UploadError(f"cannot read {file_path}: {error.strerror or error}") from None
    if size == 0:
        raise UploadError(f"cannot upload {file_path}: the file is empty")
    info = params_pb2.FileInfo(size_bytes=size)
    if len(file_path.name.encode()) <= _MAX_FILENAME_BYTES:
        info.filename = file_path.name
    fmt = sniff_format(head)
    if fmt in _UPLOAD_TYPES:
        info.content_type = _UPLOAD_TYPES[fmt]
    return Upload(file_path, role, image_index, info)


def request_stream(
    first: Request,
    uploads: list[Upload],
    make_chunk: Callable[[params_pb2.FileChunk], Request],
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Request]:
    """``first`` (the parameters message), then every upload's bytes in chunks.

    A plain generator: gRPC consumes it as the call proceeds, so only one chunk is
    in memory at a time and ``on_bytes`` reports real upload progress.
    """
    yield first
    for upload in uploads:
        sent = 0
        try:
            with upload.path.open("rb") as handle:
                while data := handle.read(CHUNK_BYTES):
                    sent += len(data)
                    yield make_chunk(
                        params_pb2.FileChunk(
                            role=upload.role, image_index=upload.image_index, data=data
                        )
                    )
                    if on_bytes is not None:
                        on_bytes(len(data))
        except OSError as error:
            raise UploadError(f"cannot read {upload.path}: {error.strerror or error}") from None
        if sent != upload.size:
            # The gateway would reject the mismatch too; saying it here names the file.
            raise UploadError(
                f"{upload.path} changed during the upload ({upload.size} bytes declared, "
                f"{sent} read)"
            )


class StreamingCall(Protocol):
    """The parts of a grpc.aio stream-stream call an upload uses."""

    async def write(self, request: Any) -> None: ...
    async def done_writing(self) -> None: ...
    async def initial_metadata(self) -> Any: ...
    def done(self) -> bool: ...
    def __aiter__(self) -> AsyncIterator[Message]: ...


async def upload_then_read(
    call: StreamingCall, requests: Iterator[Request]
) -> AsyncIterator[Message]:
    """Send the parameters, wait until the gateway accepts them, send the files, and
    yield the answer.

    The gateway sends its response headers (with ``UPLOAD_ACCEPTED``) once the
    parameters, the caller's credentials and limits pass; a refusal instead ends the
    call right there, trailers only. Waiting for the header means no upload byte goes
    into a refused call, and the refusal is read while nothing is being written:
    grpc's asyncio client misreports a status that arrives during its writes as
    INTERNAL (grpc/grpc#36066; 29 of 40 early refusals here without the wait; 1 of
    20 still, under load, when the wait took any headers as the go-ahead, since
    gRPC can hand over a refusal's empty headers before it marks the call done).
    A refusal after the go-ahead (a file's type shows in its first chunk) comes once
    the gateway has read the rest of the declared bytes, after the last write here
    (22 of 100 such refusals were lost under load before it did); so every file is
    declared with its exact size (:func:`declare`).
    """
    await call.write(next(requests))
    headers = await call.initial_metadata()
    # Without the go-ahead header the answer is a refusal (trailers only): read its
    # status without writing, even if gRPC has not marked the call done yet.
    if any(key == UPLOAD_ACCEPTED for key, _ in headers or ()) and not call.done():
        try:
            for request in requests:
                await call.write(request)
            await call.done_writing()
        except asyncio.InvalidStateError:
            pass  # the gateway ended the call mid-upload: its status follows below
    async for response in call:
        yield response


@dataclass
class UploadTracker:
    """Upload progress, and the error that made gRPC cancel the call, if any.

    gRPC swallows an exception raised by the request iterator and only reports
    CANCELLED; keeping it here lets the command print the real cause.
    """

    total: int = 0
    sent: int = 0
    error: UploadError | None = None

    def wrap(self, requests: Iterator[Request]) -> Iterator[Request]:
        try:
            yield from requests
        except UploadError as error:
            self.error = error
            raise

    def add(self, count: int) -> None:
        self.sent += count
