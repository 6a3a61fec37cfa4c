"""What the gateway asks of the upstream: one Images operation, in OpenAI's terms.

An :class:`ImagesRequest` says which operation, with which (validated) OpenAI
parameters and uploaded files, and whether to stream; how that becomes an HTTP
request (path, JSON or multipart, form encoding, file part names) is the upstream's
business (:mod:`imagegate_server.upstream.wire`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from imagegate_server.imageformat import ImageFormat
from imagegate_server.models import Operation

FileRole = Literal["image", "mask", "markup"]


@dataclass(frozen=True)
class UploadFile:
    """An uploaded file to send along; ``open`` returns it rewound, so a retry resends
    all of it."""

    role: FileRole
    format: ImageFormat | None
    """From the file's magic bytes; None when they are no image format we know."""
    open: Callable[[], IO[bytes]]
    declared_filename: str = ""
    declared_content_type: str = ""


@dataclass(frozen=True)
class ImagesRequest:
    operation: Operation
    params: Mapping[str, Any]
    """OpenAI's parameters, validated, unset ones omitted, without ``stream``."""
    files: Sequence[UploadFile] = field(default=())
    """Images (in order), then at most one mask or markup."""
    stream: bool = False
    """Ask OpenAI to stream the answer as events (the caller knows the model can)."""
