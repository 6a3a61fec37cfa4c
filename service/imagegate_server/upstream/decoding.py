"""An ImagesResponse (or a streamed event's data, :mod:`.sse`) read as it arrives:
each ``b64_json`` decoded while it streams by.

A large answer is mostly base64. Reading the whole body, parsing it into a dict of
str and then decoding held the body, its text and the images at once (about 2x
the base64 size per call in flight). Here each chunk of the body is scanned for
``"b64_json": "`` keys; the value's characters are decoded (SIMD base64, pybase64)
as they arrive and only the small rest of the document, the *skeleton* with every
image value emptied, is kept and parsed (orjson) at the end. The same answer costs
its decoded images plus one chunk.

Each image is checked as it is read, against what the request allows
(:class:`~imagegate_server.upstream.bounds.ImageLimits`): its decoded size while it
is decoded, no more images than asked for, and its format by its first bytes
(a format is a few bytes to look at, so no image is copied for it): once the image
is whole, or, with a sink, as soon as they are decoded.

Given an :class:`~imagegate_server.upstream.answers.ImageSink`, the reader hands
each image's decoded pieces to it as they come (once the image's format is
accepted) instead of keeping them: the answer then holds no image at all.

A key is recognised only as a key: inside a JSON string every quote is escaped, so
the unescaped sequence ``"b64_json"`` followed by ``:`` and ``"`` cannot occur in a
value. Base64 needs no escapes, but JSON allows ``\\/`` for ``/`` (some encoders
write it); any other escape in image data is an upstream error.

:func:`aligned_images` then pairs the decoded images with the answer's ``data`` items.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
import pybase64

from imagegate_server.errors import AnswerFault, UpstreamProtocolError
from imagegate_server.upstream.answers import SUNK, ImageSink
from imagegate_server.upstream.bounds import ImageLimits, image_format

_KEY = re.compile(rb'"b64_json"\s*:\s*"')
# A key split across two chunks: the scan looks back this far into the skeleton.
_LOOKBACK = 64
# Enough of an image's start to tell its format (an SVG's may start with white space).
_FORMAT_HEAD = 64


class AnswerReader:
    """Feed a document's chunks in order (an ImagesResponse, or the data of one
    streamed event), then :meth:`finish` for (payload, images).

    In the payload every streamed ``b64_json`` value is the empty string; ``images``
    holds their decoded bytes in document order (:data:`SUNK` for each, with a
    ``sink``).
    """

    def __init__(
        self, request_id: str | None, limits: ImageLimits, sink: ImageSink | None = None
    ) -> None:
        self._request_id = request_id
        self._limits = limits
        self._sink = sink
        self._skeleton = bytearray()
        self._image: list[bytes] | None = None
        """Decoded pieces of the image being read (with a sink, only those before
        its format is known); None between images."""
        self._image_bytes = 0
        """Decoded bytes of the image being read."""
        self._head = b""
        """The first bytes of the image being read, until its format is known."""
        self._format: str | None = None
        """The format of the image being read, once its first bytes are checked."""
        self._carry = b""
        """Base64 characters short of a 4-character group, for the next chunk."""
        self._images: list[bytes] = []

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._image is not None:
                pos = self._image_chars(data, pos)
                continue
            lookback = min(_LOOKBACK, len(self._skeleton))
            window = bytes(self._skeleton[len(self._skeleton) - lookback :]) + data[pos:]
            # The first key whose value starts in the new data (an emptied value in the
            # look-back matches too: it was taken already).
            match = next((m for m in _KEY.finditer(window) if m.end() > lookback), None)
            if match is None:
                self._skeleton += data[pos:]
                if len(self._skeleton) > self._limits.max_json_bytes:
                    raise self._fault(
                        AnswerFault.TOO_LARGE, "the upstream's answer is no images response"
                    )
                return
            if len(self._images) >= self._limits.max_images:
                raise self._fault(AnswerFault.TOO_LARGE, "the upstream sent more images than asked")
            value_start = pos + match.end() - lookback
            self._skeleton += data[pos:value_start]
            self._skeleton += b'"'  # the value, emptied
            self._image, self._carry, self._image_bytes = [], b"", 0
            self._head, self._format = b"", None
            pos = value_start

    def _image_chars(self, data: bytes, pos: int) -> int:
        """Decode base64 characters from ``pos``; the position after what was taken."""
        end = data.find(b'"', pos)
        stop = len(data) if end < 0 else end
        if b"\\" in self._carry or data.find(b"\\", pos, stop) >= 0:
            return self._escaped_chars(data, pos, end)
        assert self._image is not None
        if self._carry:  # complete the group the last chunk began
            fill = data[pos : min(stop, pos + 4 - len(self._carry))]
            group, pos = self._carry + fill, pos + len(fill)
            if len(group) < 4 and end < 0:
                self._carry = group
                return len(data)
            self._decode(group)
            self._carry = b""
        # The rest is decoded where it lies in the chunk (a view, not a copy).
        chars = memoryview(data)[pos:stop]
        if end < 0:  # the value goes on in the next chunk: decode whole groups only
            usable = len(chars) - len(chars) % 4
            self._decode(chars[:usable])
            self._carry = bytes(chars[usable:])
            return len(data)
        self._decode(chars)
        return self._image_done(end)

    def _escaped_chars(self, data: bytes, pos: int, end: int) -> int:
        """:meth:`_image_chars` for characters with a backslash among them: JSON's
        ``\\/`` is a ``/``, any other escape is no base64."""
        chars = self._carry + data[pos : len(data) if end < 0 else end]
        held = b""
        if end < 0 and chars.endswith(b"\\"):  # an escape split across chunks
            chars, held = chars[:-1], b"\\"
        chars = chars.replace(b"\\/", b"/")
        if b"\\" in chars:
            raise self._fault(AnswerFault.BAD_IMAGE, "the upstream escaped its image data")
        if end < 0:
            usable = len(chars) - len(chars) % 4
            self._decode(memoryview(chars)[:usable])
            self._carry = chars[usable:] + held
            return len(data)
        self._decode(chars)
        return self._image_done(end)

    def _image_done(self, end: int) -> int:
        assert self._image is not None
        if self._sink is None:
            image = b"".join(self._image)
            self._check_format(image[:_FORMAT_HEAD])
            self._images.append(image)
        else:
            if self._format is None:  # shorter than the head a format check reads
                self._recognise()
            self._sink.end()
            self._images.append(SUNK)
        self._image, self._carry = None, b""
        return end + 1  # past the closing quote: the skeleton has its own

    def _take(self, piece: bytes) -> None:
        """Keep a decoded piece; with a sink, hand it on once the image's format is
        known (checked as soon as its first bytes are in: nothing of an image in
        another format reaches the sink)."""
        assert self._image is not None
        if self._sink is None:
            self._image.append(piece)  # its format is checked once it is whole
        elif self._format is not None:
            self._sink.write(piece)
        else:
            self._image.append(piece)
            if len(self._head) < _FORMAT_HEAD:
                self._head += piece[: _FORMAT_HEAD - len(self._head)]
            if len(self._head) >= _FORMAT_HEAD:
                self._recognise()

    def _recognise(self) -> None:
        """The format of the image a sink gets, from its first bytes; then the sink
        gets the image's pieces so far."""
        assert self._image is not None and self._sink is not None
        self._format = self._check_format(self._head)
        self._sink.begin(self._format)
        for piece in self._image:
            self._sink.write(piece)
        self._image.clear()

    def _check_format(self, head: bytes) -> str:
        found = image_format(head)
        if found is None or found not in self._limits.formats:
            raise self._fault(
                AnswerFault.BAD_IMAGE, "the upstream sent an image not in the format asked for"
            )
        return found

    def _decode(self, chars: bytes | memoryview) -> None:
        """Decode base64 characters (whole groups) onto the image being read."""
        assert self._image is not None
        try:
            piece = pybase64.b64decode(chars, validate=True)
        except ValueError:
            raise self._fault(AnswerFault.BAD_IMAGE, "the upstream sent invalid base64") from None
        self._image_bytes += len(piece)
        if self._image_bytes > self._limits.max_bytes:
            raise self._fault(
                AnswerFault.TOO_LARGE, "the upstream sent an image larger than the request allows"
            )
        self._take(piece)

    def _fault(self, fault: AnswerFault, message: str) -> UpstreamProtocolError:
        return UpstreamProtocolError(message, self._request_id, fault)

    def finish(self) -> tuple[dict[str, Any], list[bytes]]:
        if self._image is not None:
            raise self._fault(AnswerFault.BAD_ANSWER, "the upstream's answer ended mid-image")
        return self._parse(self._skeleton), self._images

    def _parse(self, document: bytes | bytearray) -> dict[str, Any]:
        try:
            payload = orjson.loads(document)
        except orjson.JSONDecodeError:
            raise self._fault(AnswerFault.BAD_ANSWER, "the upstream sent invalid JSON") from None
        if not isinstance(payload, dict):
            raise self._fault(AnswerFault.BAD_ANSWER, "the upstream sent unexpected JSON")
        return payload


def aligned_images(
    payload: Mapping[str, Any], images: list[bytes], request_id: str | None, max_images: int
) -> list[bytes | None]:
    """The decoded images, one per ``data`` item (None for an item with a URL instead):
    at least one, and at most ``max_images`` (the request's ``n``)."""
    data = payload.get("data")
    items = data if isinstance(data, list) else []
    streamed = iter(images)
    aligned: list[bytes | None] = []
    for item in items:
        if isinstance(item, dict) and item.get("b64_json") == "":
            image = next(streamed, None)
            if image is None:
                break
            aligned.append(image)
        else:
            aligned.append(None)
    if len(aligned) != len(items) or next(streamed, None) is not None:
        raise UpstreamProtocolError("the upstream sent images outside its data", request_id)
    if not aligned:
        raise UpstreamProtocolError(
            "the upstream answered without images", request_id, AnswerFault.NO_IMAGES
        )
    if len(aligned) > max_images:
        raise UpstreamProtocolError(
            "the upstream sent more images than asked", request_id, AnswerFault.TOO_LARGE
        )
    return aligned
