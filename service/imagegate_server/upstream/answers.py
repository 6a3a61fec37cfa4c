"""What the upstream gives back: a whole ImagesResponse, or its events as they arrive.

Both are decoded JSON objects; their base64 images are left for the gateway's
mapping stage, which decodes each exactly once, straight into the result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ImagesAnswer:
    """A whole ImagesResponse (``created``, ``data``, ``usage``, echoed settings)."""

    payload: Mapping[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class ImageEvent:
    """One streamed event: a partial image (``partial_image_index``) or a completed one
    (echoed settings and ``usage``), each with its ``b64_json``."""

    partial: bool
    payload: Mapping[str, Any]


@dataclass
class ImageEvents:
    """A streamed answer: iterate it for :class:`ImageEvent` in arrival order."""

    events: AsyncIterator[ImageEvent]
    request_id: str | None

    def __aiter__(self) -> AsyncIterator[ImageEvent]:
        return self.events


Reply = ImagesAnswer | ImageEvents
