"""What the upstream gives back: a whole ImagesResponse, or its events as they arrive.

Both are decoded: the JSON into objects, and every image from base64 into its raw
bytes, exactly once, as it arrives (:mod:`.decoding`). The objects keep their
``b64_json`` keys with empty values, so the images' places stay visible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ImagesAnswer:
    """A whole ImagesResponse (``created``, ``data``, ``usage``, echoed settings)."""

    payload: Mapping[str, Any]
    images: Sequence[bytes | None]
    """Each ``data`` item's image, decoded; None for an item with a ``url`` instead."""
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
