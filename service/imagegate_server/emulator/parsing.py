"""Request bodies as OpenAI reads them: JSON, or multipart read part by part.

aiohttp's streaming multipart reader means an upload is never buffered twice; each
file part keeps at most ``max_file_bytes`` but is measured to the end, so a 60 MB
upload is answered with OpenAI's ``image_too_large`` rather than a transport error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from imagegate_server.emulator.errors import bad_request
from imagegate_server.imageformat import HEADER_BYTES, ImageInfo, read_image_info
from imagegate_server.validation import FileDescriptor

FILE_FIELDS = frozenset({"image", "image[]", "mask", "markup"})
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_MAX_TEXT_FIELD = 1024 * 1024


@dataclass
class Upload:
    field: str
    filename: str | None
    content_type: str | None
    data: bytes
    size: int
    sha256: str

    @property
    def info(self) -> ImageInfo | None:
        return read_image_info(self.data[:HEADER_BYTES])

    def descriptor(self, param: str, *, check_content_type: bool = True) -> FileDescriptor:
        return FileDescriptor(
            param, self.size, self.info, self.content_type if check_content_type else None
        )


@dataclass
class Body:
    kind: str
    """``json``, ``multipart`` or ``empty``."""
    json: Any = None
    form: list[tuple[str, str]] = field(default_factory=list)
    files: list[Upload] = field(default_factory=list)


async def read_body(request: web.Request, max_file_bytes: int) -> Body:
    """Raise :class:`ApiError` (400) for bodies OpenAI could not parse either."""
    content_type = request.content_type
    if content_type == "multipart/form-data":
        return await _multipart(request, max_file_bytes)
    raw = await request.read()
    if not raw:
        return Body("empty")
    if content_type not in ("application/json", "application/octet-stream", ""):
        raise bad_request(f"Unsupported content type: '{content_type[:100]}'.")
    try:
        decoded = json.loads(raw)
        if _SURROGATE_ESCAPE.search(raw):
            # JSON can escape a lone UTF-16 surrogate ("\ud800"), which no UTF-8 text
            # holds: refuse it here rather than fail later while drawing the prompt.
            json.dumps(decoded, ensure_ascii=False).encode()
        return Body("json", json=decoded)
    except (UnicodeError, json.JSONDecodeError):
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly.)"
        ) from None


async def _multipart(request: web.Request, max_file_bytes: int) -> Body:
    body = Body("multipart")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise bad_request("Nested multipart bodies are not supported.")
            name = part.name or ""
            if part.filename is not None or name in FILE_FIELDS:
                body.files.append(await _file(part, name, max_file_bytes))
            else:
                data = await part.read_chunk(_MAX_TEXT_FIELD + 1)
                if len(data) > _MAX_TEXT_FIELD:
                    raise bad_request(f"Field '{name[:100]}' is too large.", name)
                await part.release()
                body.form.append((name, data.decode("utf-8", errors="replace")))
    # aiohttp's reader raises ValueError for bad framing, HttpProcessingError for bad
    # part headers (control characters in a name) and RuntimeError for unknown encodings.
    except (ValueError, AssertionError, UnicodeDecodeError, HttpProcessingError, RuntimeError):
        raise bad_request("Could not parse multipart form.") from None
    return body


async def _file(part: BodyPartReader, name: str, max_file_bytes: int) -> Upload:
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(256 * 1024):
        digest.update(chunk)
        if size < max_file_bytes:
            chunks.append(chunk[: max_file_bytes - size])
        size += len(chunk)
    return Upload(
        name,
        part.filename,
        part.headers.get("Content-Type"),
        b"".join(chunks),
        size,
        digest.hexdigest(),
    )


def form_params(form: list[tuple[str, str]]) -> dict[str, object]:
    """Multipart fields as an OpenAI parameter dict: the last value of a name wins,
    and bracketed names (``svg[model]``, ``svg[reasoning][effort]``) nest."""
    params: dict[str, object] = {}
    for name, value in form:
        if "[" in name and name.endswith("]") and not name.startswith("["):
            head, _, rest = name.partition("[")
            keys = [head, *rest[:-1].split("][")]
            target: dict[str, object] = params
            for key in keys[:-1]:
                child = target.get(key)
                if not isinstance(child, dict):
                    child = {}
                    target[key] = child
                target = child
            target[keys[-1]] = value
        else:
            params[name] = value
    return params


def decode_image_ref(param: str, ref: dict[str, Any]) -> Upload:
    """A JSON edit's ImageRefParam as an upload: only ``data:`` URLs can be served offline."""
    if "file_id" in ref:
        raise bad_request(
            "file_id references are not supported by the emulator (it has no Files API); "
            "send the image as a data: URL or as a multipart upload.",
            f"{param}.file_id",
            "invalid_value",
        )
    url = str(ref.get("image_url", ""))
    header, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not header.endswith(";base64"):
        raise bad_request(
            "The emulator is offline and cannot fetch image URLs; use a base64 data: URL.",
            f"{param}.image_url",
            "invalid_value",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            "Invalid base64 in data URL.", f"{param}.image_url", "invalid_value"
        ) from None
    mime = header[5 : -len(";base64")] or None
    return Upload(param, None, mime, data, len(data), hashlib.sha256(data).hexdigest())
