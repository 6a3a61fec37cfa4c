"""Image type and dimensions from the first bytes of a file, without decoding it.

OpenAI judges uploads by content, not by filename or declared type, and both the
gateway (streaming uploads it has not fully received) and the emulator need the
format, width, height and alpha of a file cheaply. Everything here reads headers
only (:data:`HEADER_BYTES` is enough for all four formats in practice) and never
raises on malformed input: it returns None or a partial answer instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

ImageFormat = Literal["png", "jpeg", "webp", "gif"]

MAGIC_BYTES = 12
"""Enough of a file's start for :func:`sniff_format` to tell all four formats apart."""

HEADER_BYTES = 64 * 1024
"""How much of a file to read before calling :func:`read_image_info`.

PNG and WebP keep their dimensions in the first 30 bytes; JPEG may put large
EXIF/ICC segments before its SOF marker, hence the generous margin.
"""

# The one home of these facts, for every format OpenAI reads or writes (the four
# sniffable input formats, plus SVG output).
CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
EXTENSIONS: dict[str, str] = {
    "png": "png",
    "jpeg": "jpg",
    "webp": "webp",
    "gif": "gif",
    "svg": "svg",
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types with an alpha channel (grey+alpha, RGBA); tRNS adds alpha to the others.
_PNG_ALPHA_COLOUR_TYPES = frozenset({4, 6})
# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG), CC (DAC) do not.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image."""

    format: ImageFormat
    width: int | None
    """None when the header is truncated or malformed before the dimensions."""
    height: int | None
    has_alpha: bool | None
    """PNG: alpha colour type or a tRNS chunk; WebP: the alpha flag; None when unknown."""
    png_colour_type: int | None = None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def sniff_format(head: bytes) -> ImageFormat | None:
    """The image format from magic bytes, or None if it is none of the four."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def read_image_info(head: bytes) -> ImageInfo | None:
    """Format, dimensions and alpha from the start of a file; None if not an image."""
    fmt = sniff_format(head)
    if fmt == "png":
        return _png(head)
    if fmt == "jpeg":
        return _jpeg(head)
    if fmt == "webp":
        return _webp(head)
    if fmt == "gif":
        return _gif(head)
    return None


def _png(head: bytes) -> ImageInfo:
    # IHDR must be the first chunk: length(4) type(4) width(4) height(4) depth(1) colour(1).
    if len(head) < 26 or head[12:16] != b"IHDR":
        return ImageInfo("png", None, None, None)
    width, height = struct.unpack(">II", head[16:24])
    colour_type = head[25]
    has_alpha = colour_type in _PNG_ALPHA_COLOUR_TYPES or _png_has_trns(head)
    if width == 0 or height == 0:
        return ImageInfo("png", None, None, has_alpha, colour_type)
    return ImageInfo("png", width, height, has_alpha, colour_type)


def _png_has_trns(head: bytes) -> bool:
    """Whether a tRNS chunk appears before the image data (where the spec puts it)."""
    offset = 8
    while offset + 8 <= len(head):
        (length,) = struct.unpack(">I", head[offset : offset + 4])
        chunk_type = head[offset + 4 : offset + 8]
        if chunk_type == b"tRNS":
            return True
        if chunk_type in (b"IDAT", b"IEND"):
            return False
        offset += 12 + length
    return False


def _jpeg(head: bytes) -> ImageInfo:
    offset = 2
    size = len(head)
    while offset + 4 <= size:
        if head[offset] != 0xFF:
            break
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            offset += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no SOF found
            break
        (length,) = struct.unpack(">H", head[offset + 2 : offset + 4])
        if length < 2:
            break
        if marker in _JPEG_SOF_MARKERS:
            if offset + 9 > size:
                break
            height, width = struct.unpack(">HH", head[offset + 5 : offset + 9])
            if width == 0 or height == 0:
                break
            return ImageInfo("jpeg", width, height, False)
        offset += 2 + length
    return ImageInfo("jpeg", None, None, False)


def _webp(head: bytes) -> ImageInfo:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        has_alpha = bool(head[20] & 0x10)
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        return ImageInfo("webp", width, height, has_alpha)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        width &= 0x3FFF
        height &= 0x3FFF
        if width and height:
            return ImageInfo("webp", width, height, False)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        (bits,) = struct.unpack("<I", head[21:25])
        width = 1 + (bits & 0x3FFF)
        height = 1 + ((bits >> 14) & 0x3FFF)
        has_alpha = bool((bits >> 28) & 1)
        return ImageInfo("webp", width, height, has_alpha)
    return ImageInfo("webp", None, None, None)


def _gif(head: bytes) -> ImageInfo:
    if len(head) < 10:
        return ImageInfo("gif", None, None, None)
    width, height = struct.unpack("<HH", head[6:10])
    if width == 0 or height == 0:
        return ImageInfo("gif", None, None, None)
    return ImageInfo("gif", width, height, None)
