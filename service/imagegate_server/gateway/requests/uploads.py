"""Uploaded files, assembled from a client stream with byte caps enforced as they arrive.

Each declared file is spooled (:mod:`.spool`): the call's files in memory up to one
threshold for all of them together, the rest in unlinked files on disk, counted
against the client's disk quota; so memory per call stays bounded whatever the
upload size. A file over its cap or over its declared size, or a request over the
gateway's cap, fails the call at the first byte over it, without reading the rest
of the stream; declared sizes over a cap fail it before any byte. The file type
comes from the file's magic bytes, never from its declared type or name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from imagegate.v1 import params_pb2

from imagegate_server.errors import InvalidRequest, LimitExceeded
from imagegate_server.gateway.requests.spool import CallSpool, Spool
from imagegate_server.imageformat import (
    HEADER_BYTES,
    MAGIC_BYTES,
    ImageInfo,
    read_image_info,
    sniff_format,
)
from imagegate_server.upstream import FileRole, UploadFile
from imagegate_server.validation import FileDescriptor

MAX_CHUNK_BYTES = 1024 * 1024


class UploadedFile:
    """One declared file: its bytes so far, spooled, and what its header says."""

    def __init__(
        self,
        path: str,
        declared: params_pb2.FileInfo,
        cap: int,
        spool: Spool,
        formats: frozenset[str],
    ) -> None:
        self.path = path
        """The proto path of the declaration, e.g. ``parameters.images[1]``."""
        self.declared = declared
        self.cap = cap
        self.formats = formats
        """The image formats this file may be; judged as soon as its magic bytes arrive."""
        self.size = 0
        self._magic = bytearray()
        self._typed = False
        self._info: ImageInfo | None = None
        self.spool = spool
        self.expected = declared.size_bytes if declared.HasField("size_bytes") else None
        """The size the caller declared, if it did."""
        if self.expected is not None and self.expected >= cap:
            raise _too_large(path, cap)

    @property
    def owed(self) -> int:
        """Declared bytes that have not arrived yet (0 for an undeclared size)."""
        return max(0, self.expected - self.size) if self.expected is not None else 0

    def append(self, data: bytes) -> None:
        if self.size + len(data) >= self.cap:
            raise _too_large(self.path, self.cap)
        if self.expected is not None and self.size + len(data) > self.expected:
            raise InvalidRequest.one(
                f"{self.path}.size_bytes",
                f"declared {self.expected} bytes but more arrived",
                "size_mismatch",
            )
        if len(self._magic) < MAGIC_BYTES:
            self._magic += data[: MAGIC_BYTES - len(self._magic)]
            if len(self._magic) == MAGIC_BYTES:
                self._check_type()
        self.spool.write(data)
        self.size += len(data)

    def _check_type(self) -> None:
        # The first bytes say what the file is: a wrong type fails the call at the
        # chunk that shows it, not after the rest of a large upload is read.
        self._typed = True
        if sniff_format(bytes(self._magic)) not in self.formats:
            allowed = " or ".join(sorted(self.formats))
            raise InvalidRequest.one(
                self.path,
                f"the content must be {allowed} (judged by its first bytes)",
                "invalid_image_format",
            )

    def finish(self) -> None:
        if self.size == 0:
            raise InvalidRequest.one(self.path, "declared but no bytes arrived", "missing_file")
        if not self._typed:
            self._check_type()
        if self.expected is not None and self.expected != self.size:
            raise InvalidRequest.one(
                f"{self.path}.size_bytes",
                f"declared {self.expected} bytes but {self.size} arrived",
                "size_mismatch",
            )

    @property
    def info(self) -> ImageInfo | None:
        # Read from the spool when first asked (the file is whole by then), not kept
        # aside as it arrives: 64 KiB per file of a 16-file call would be a second
        # threshold's worth of memory.
        if self._info is None:
            self._info = read_image_info(self.spool.head(HEADER_BYTES))
        return self._info

    def descriptor(self, param: str) -> FileDescriptor:
        return FileDescriptor(
            param=param,
            size=self.size,
            info=self.info,
            content_type=self.declared.content_type or None,
        )

    def upload_file(self, role: FileRole) -> UploadFile:
        """The file as the upstream sends it (its type from its magic bytes)."""
        info = self.info
        return UploadFile(
            role=role,
            format=info.format if info else None,
            open=self.spool.reader,
            declared_filename=self.declared.filename,
            declared_content_type=self.declared.content_type,
        )

    def close(self) -> None:
        self.spool.close()


def _too_large(path: str, cap: int) -> InvalidRequest:
    return InvalidRequest.one(
        path, f"the file must be less than {cap} bytes for this model", "image_too_large"
    )


@dataclass(frozen=True)
class UploadLimits:
    request_cap: int
    spool_at: int


class Upload:
    """The files of one call, keyed by their role and index, and where they wait."""

    def __init__(self, limits: UploadLimits, spool: CallSpool) -> None:
        self._limits = limits
        self._spool = spool
        self._files: dict[tuple[int, int], UploadedFile] = {}
        self.total = 0
        self.declared_total = 0
        """The sizes the caller declared, added up."""

    def declare(
        self,
        role: int,
        index: int,
        path: str,
        info: params_pb2.FileInfo,
        cap: int,
        formats: frozenset[str],
    ) -> None:
        file = UploadedFile(path, info, cap, self._spool.file(), formats)
        self._files[role, index] = file
        self.declared_total += file.expected or 0
        if self.declared_total > self._limits.request_cap:
            raise _over_request_cap(self._limits.request_cap)

    def reserve_disk(self) -> None:
        """Reserve the disk the declared sizes need, before any file byte is read
        (raises :class:`LimitRefused` when the client's disk quota cannot hold them)."""
        self._spool.reserve(self.declared_total)

    @property
    def owed(self) -> int:
        """Bytes the caller declared and has not sent yet."""
        return sum(file.owed for file in self._files.values())

    def get(self, role: int, index: int = 0) -> UploadedFile | None:
        return self._files.get((role, index))

    def add(self, chunk: params_pb2.FileChunk, position: int) -> None:
        where = f"chunk[{position}]"
        if len(chunk.data) > MAX_CHUNK_BYTES:
            raise InvalidRequest.one(f"{where}.data", "a chunk carries at most 1 MiB")
        if chunk.role == params_pb2.FILE_ROLE_UNSPECIFIED:
            raise InvalidRequest.one(f"{where}.role", "must name the file (image, mask, markup)")
        if chunk.role != params_pb2.FILE_ROLE_IMAGE and chunk.image_index:
            raise InvalidRequest.one(f"{where}.image_index", "must be 0 for a mask or markup")
        file = self._files.get((chunk.role, chunk.image_index))
        if file is None:
            raise InvalidRequest.one(
                f"{where}.image_index"
                if chunk.role == params_pb2.FILE_ROLE_IMAGE
                else f"{where}.role",
                "names a file the parameters did not declare",
            )
        if self.total + len(chunk.data) > self._limits.request_cap:
            raise _over_request_cap(self._limits.request_cap)
        file.append(chunk.data)
        self.total += len(chunk.data)

    def finish(self) -> None:
        for file in self._files.values():
            file.finish()

    @property
    def spooled_bytes(self) -> int:
        """Bytes of the files that went past the threshold into temporary files."""
        return sum(file.size for file in self._files.values() if file.spool.on_disk)

    def close(self) -> None:
        """Free the spools: memory, files, and the client's disk reservation."""
        for file in self._files.values():
            file.close()
        self._spool.close()


def _over_request_cap(cap: int) -> LimitExceeded:
    return LimitExceeded(
        "upload bytes per request", f"the upload exceeds this gateway's limit of {cap} bytes"
    )


async def drain(chunks: AsyncIterator[params_pb2.FileChunk], upload: Upload) -> None:
    """Add every chunk to ``upload`` (numbered, for the errors), then check its files."""
    position = 0
    async for chunk in chunks:
        upload.add(chunk, position)
        position += 1
    upload.finish()
