"""What the upstream gives back: a whole ImagesResponse, or its events as they arrive.

Both are decoded: the JSON into objects, and every image from base64 into its raw
bytes, exactly once, as it arrives (:mod:`.decoding`). The objects keep their
``b64_json`` keys with empty values, so the images' places stay visible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SUNK = b""
"""In :attr:`ImagesAnswer.images`: an image that went to the answer's
:class:`ImageSink` instead (no image is empty: an empty one fails its format check)."""


class ImageSink(Protocol):
    """Where a whole answer's images go as they are decoded, instead of into the
    answer: so that a caller that passes them on (to the result store) never holds
    them all. Called in document order, per image: :meth:`begin` once its format is
    known (and accepted), :meth:`write` for each decoded piece, :meth:`end` once it
    is whole; :meth:`drain` between the answer's chunks. What the sink does with a
    failure of its own is its business: it must not raise from these calls (the
    answer is read to its end, so its usage is known and the call can be priced).
    An answer that fails (too large, bad base64, a broken connection) leaves the
    images it began unfinished: the sink's owner discards them.
    """

    def begin(self, image_format: str) -> None:
        """The next image starts: ``png``, ``jpeg``, ``webp``, ``gif`` or ``svg``."""

    def write(self, piece: bytes) -> None:
        """The image's next decoded bytes."""

    def end(self) -> None:
        """The image is whole."""

    async def drain(self) -> None:
        """Until the sink has room for more (backpressure on the answer's reading)."""


@dataclass(frozen=True)
class ImagesAnswer:
    """A whole ImagesResponse (``created``, ``data``, ``usage``, echoed settings)."""

    payload: Mapping[str, Any]
    images: Sequence[bytes | None]
    """Each ``data`` item's image, decoded; None for an item with a ``url`` instead;
    :data:`SUNK` for one that went to the request's :class:`ImageSink`."""
    request_id: str | None
    upstream: str = ""
    """The name of the upstream that answered."""


@dataclass(frozen=True)
class ImageEvent:
    """One streamed event: a partial image (``partial_image_index``) or a completed one
    (echoed settings and ``usage``), and its image, decoded."""

    partial: bool
    payload: Mapping[str, Any]
    image: bytes


@dataclass
class ImageEvents:
    """A streamed answer: iterate it for :class:`ImageEvent` in arrival order."""

    events: AsyncIterator[ImageEvent]
    request_id: str | None
    upstream: str = ""
    """The name of the upstream that answers."""

    def __aiter__(self) -> AsyncIterator[ImageEvent]:
        return self.events


Reply = ImagesAnswer | ImageEvents
