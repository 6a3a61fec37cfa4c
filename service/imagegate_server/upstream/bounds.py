"""How large an answer may be: the largest one the model table allows for the request.

The request says how many images (``n``, and ``partial_images`` when streamed), how
large (``size``) and in which format, so before reading a byte the gateway knows the
largest answer a legitimate upstream can send, and reads no more (a 407 KB gzip
answer that unpacked to 400 MB once took the gateway to 1.2 GB). Bounds are upper
bounds with room to spare, never estimates: an answer cut short was billed anyway.

One image, decoded:

- png, jpeg, webp: 4 bytes per pixel, 8-bit RGBA kept without any compression. An
  image model's PNG is 1.2-2.5 bytes per pixel by the figures in
  ``emulator/real_sizes.py`` (JPEG and WebP below 1 even at compression 100), so a
  legitimate image stays at least 1.6x below it.
- gif: 2 bytes per pixel per frame (LZW's worst case spends 12 bits on an 8-bit
  index), times ``frame_count`` (at most 16 when unset).
- svg: :data:`SVG_BYTES` (text; no pixel count bounds it).
- plus :data:`IMAGE_EXTRA_BYTES` for metadata (provenance manifests, ICC profiles).

Pixels: the request's ``size``; ``auto`` (or none) is the model's largest, which for
gpt-image-2's flexible sizes is its pixel limit (3840x2160), since ``auto`` may pick
sizes outside the standard three.

An answer: every image in base64 (4 characters per 3 bytes) plus
:data:`JSON_BYTES_PER_IMAGE` for its JSON (a revised prompt of 32,000 characters in
``\\uXXXX`` escapes is 192 KB) plus :data:`JSON_BYTES`. A stream: one such document
per event, ``n x (1 + partial_images)`` events. A model the table does not know gets
the operator's cap (``IMAGEGATE_UPSTREAM_UNKNOWN_MODEL_ANSWER_BYTES``) for the whole
answer and for each image.

:func:`check_head` refuses an answer by its headers (a content encoding, a declared
length past the bound), :func:`bounded` as soon as more than the bound arrived; the
decoder checks each image (:class:`ImageLimits`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from imagegate_server.errors import AnswerFault, UpstreamProtocolError
from imagegate_server.imageformat import CONTENT_TYPES, sniff_format
from imagegate_server.models import MB, ModelRules, parse_size, rules_for
from imagegate_server.upstream.errors import is_encoded

RASTER_BYTES_PER_PIXEL = 4
GIF_BYTES_PER_PIXEL_FRAME = 2
GIF_MAX_FRAMES = 16
SVG_BYTES = 8 * MB
IMAGE_EXTRA_BYTES = 1 * MB
JSON_BYTES_PER_IMAGE = 256 * 1024
JSON_BYTES = 64 * 1024

_ANY_FORMAT = frozenset(CONTENT_TYPES)
# A byte-order mark and white space may come before an SVG document's first tag.
_SVG_LEAD = b"\xef\xbb\xbf \t\r\n"


@dataclass(frozen=True)
class ImageLimits:
    """What each image of one document (an answer, or one streamed event) may be."""

    max_bytes: int
    """Decoded bytes of one image."""
    max_images: int
    """Images with data in the document."""
    formats: frozenset[str]
    """Formats an image may have, as :func:`image_format` tells them."""
    max_json_bytes: int
    """The rest of the document (metadata, usage, revised prompts): its JSON with the
    images' values emptied."""


@dataclass(frozen=True)
class AnswerBounds:
    body_bytes: int
    """The whole body as sent: an answer, or every event of a stream."""
    images: ImageLimits
    """Each image of a whole answer (``max_images``: ``n``)."""
    event: ImageLimits
    """The image of each streamed event (one)."""
    final_images: int
    """Completed images (``n``)."""
    partial_images: int
    """Partial images of a stream (``n x partial_images``)."""


def answer_bounds(
    params: Mapping[str, Any], *, stream: bool, unknown_model_bytes: int
) -> AnswerBounds:
    """The bounds of the answer to a request with these (validated) parameters."""
    n = max(1, _count(params.get("n"), default=1))
    partials = _count(params.get("partial_images"), default=0) if stream else 0
    model = params.get("model")
    rules = rules_for(model) if isinstance(model, str) else None
    output_format = params.get("output_format")
    json_bytes = n * JSON_BYTES_PER_IMAGE + JSON_BYTES
    if rules is None:
        formats = frozenset({output_format}) if output_format in _ANY_FORMAT else _ANY_FORMAT
        image, body = unknown_model_bytes, unknown_model_bytes
        json_bytes = min(json_bytes, unknown_model_bytes)
    else:
        fmt = output_format if isinstance(output_format, str) else "png"
        formats = frozenset({fmt})
        image = image_bytes(rules, params.get("size"), fmt, params.get("frame_count"))
        documents = n * (1 + partials)
        body = documents * (_base64_bytes(image) + JSON_BYTES_PER_IMAGE) + JSON_BYTES
    return AnswerBounds(
        body_bytes=body,
        images=ImageLimits(image, n, formats, json_bytes),
        event=ImageLimits(image, 1, formats, JSON_BYTES_PER_IMAGE + JSON_BYTES),
        final_images=n,
        partial_images=n * partials,
    )


def image_bytes(rules: ModelRules, size: object, fmt: str, frame_count: object) -> int:
    """The largest decoded image of ``rules``'s model at ``size`` in format ``fmt``."""
    if fmt == "svg":
        return SVG_BYTES + IMAGE_EXTRA_BYTES
    pixels = _pixels(rules, size)
    if fmt == "gif":
        frames = _count(frame_count, default=GIF_MAX_FRAMES)
        return pixels * GIF_BYTES_PER_PIXEL_FRAME * frames + IMAGE_EXTRA_BYTES
    return pixels * RASTER_BYTES_PER_PIXEL + IMAGE_EXTRA_BYTES


def image_format(head: bytes) -> str | None:
    """The format of an image from its first bytes (:data:`imagegate_server.
    imageformat.MAGIC_BYTES` of them suffice); ``svg`` for a document that opens a tag."""
    fmt = sniff_format(head)
    if fmt is not None:
        return fmt
    return "svg" if head.lstrip(_SVG_LEAD).startswith(b"<") else None


def _pixels(rules: ModelRules, size: object) -> int:
    dims = parse_size(size) if isinstance(size, str) else None
    if dims is not None:
        return dims[0] * dims[1]
    # auto, or none: the largest the model makes.
    listed = [parse_size(s) for s in rules.sizes]
    largest = max((w * h for w, h in filter(None, listed)), default=0)
    if rules.flexible_size is not None:
        largest = max(largest, rules.flexible_size.max_pixels)
    return largest


def _base64_bytes(decoded: int) -> int:
    return -(-decoded // 3) * 4


def _count(value: object, *, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value


def check_head(headers: httpx.Headers, bounds: AnswerBounds, request_id: str | None) -> None:
    """Refuse an answer by its headers: an encoding, or a length past the bound."""
    if is_encoded(headers):
        raise UpstreamProtocolError(
            "the upstream sent a content encoding the gateway did not ask for",
            request_id,
            AnswerFault.ENCODING,
        )
    length = headers.get("content-length", "")
    if length.isdecimal() and len(length) < 20 and int(length) > bounds.body_bytes:
        raise _too_large(request_id)


async def bounded(
    chunks: AsyncIterator[bytes], limit: int, request_id: str | None
) -> AsyncIterator[bytes]:
    """``chunks`` until more than ``limit`` bytes came: then the answer is refused."""
    taken = 0
    async for chunk in chunks:
        taken += len(chunk)
        if taken > limit:
            raise _too_large(request_id)
        yield chunk


def _too_large(request_id: str | None) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        "the upstream's answer is larger than the request allows", request_id, AnswerFault.TOO_LARGE
    )
