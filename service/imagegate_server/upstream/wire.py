"""How an :class:`ImagesRequest` travels over HTTP: path, JSON or multipart, form
encoding, file parts. The only module that knows OpenAI's request formats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import IO, Any

from imagegate_server.imageformat import CONTENT_TYPES, EXTENSIONS
from imagegate_server.models import Operation
from imagegate_server.upstream.request import ImagesRequest, UploadFile

PATHS = {
    Operation.GENERATION: "images/generations",
    Operation.EDIT: "images/edits",
    Operation.VARIATION: "images/variations",
}
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\\"]")

HttpFile = tuple[str, tuple[str, IO[bytes], str]]


def path_of(request: ImagesRequest) -> str:
    return PATHS[request.operation]


def json_body(request: ImagesRequest) -> dict[str, Any] | None:
    """The JSON body, or None when the request is multipart (it carries files)."""
    if request.files:
        return None
    return {**request.params, "stream": True} if request.stream else dict(request.params)


def form_fields(request: ImagesRequest) -> dict[str, str | list[str]]:
    """Multipart form fields, encoded as OpenAI's SDKs encode them.

    Booleans are ``true``/``false``; nested objects flatten to ``svg[model]``,
    ``svg[reasoning][effort]``; lists repeat ``key[]``.
    """
    form: dict[str, str | list[str]] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                put(f"{key}[{name}]", inner)
        elif isinstance(value, list):
            form[f"{key}[]"] = [_scalar(item) for item in value]
        else:
            form[key] = _scalar(value)

    params: Mapping[str, Any] = request.params
    if request.stream:
        params = {**params, "stream": True}
    for key, value in params.items():
        put(key, value)
    return form


def file_parts(files: Sequence[UploadFile]) -> list[HttpFile]:
    """The files as multipart parts, each opened (rewound) for this attempt.

    One input image is sent as ``image``, several as repeated ``image[]`` (both SDKs
    do so). Every part needs a filename and its real content type: OpenAI refuses
    ``application/octet-stream`` with ``unsupported_file_mimetype``.
    """
    images = sum(1 for file in files if file.role == "image")
    parts: list[HttpFile] = []
    for file in files:
        field = file.role if file.role != "image" or images == 1 else "image[]"
        parts.append((field, (_filename(file), file.open(), _content_type(file))))
    return parts


def _filename(file: UploadFile) -> str:
    extension = EXTENSIONS[file.format] if file.format else "bin"
    return _UNSAFE_FILENAME.sub("_", file.declared_filename)[:255] or f"image.{extension}"


def _content_type(file: UploadFile) -> str:
    if file.format is not None:
        return CONTENT_TYPES[file.format]
    return file.declared_content_type or "application/octet-stream"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))
