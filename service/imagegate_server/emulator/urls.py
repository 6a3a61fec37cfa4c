"""Images served by URL (``response_format=url``), valid for a limited time like
OpenAI's signed blob URLs: before expiry GET returns the bytes, after it 403."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

IMAGE_PATH = "/_emulator/images/"
"""Where stored images are served: ``IMAGE_PATH + name``."""


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    content_type: str
    expires_at: float


class UrlStore:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._images: dict[str, StoredImage] = {}
        self._expired: set[str] = set()

    def put(self, data: bytes, content_type: str, extension: str) -> str:
        self._prune()
        name = f"img-{secrets.token_urlsafe(16)}.{extension}"
        self._images[name] = StoredImage(data, content_type, self._clock() + self.ttl_s)
        return name

    def get(self, name: str) -> StoredImage | bool | None:
        """The image, ``False`` if it expired (403), ``None`` if it never existed (404)."""
        image = self._images.get(name)
        if image is not None and image.expires_at > self._clock():
            return image
        return False if image is not None or name in self._expired else None

    def _prune(self) -> None:
        now = self._clock()
        for name in [n for n, image in self._images.items() if image.expires_at <= now]:
            del self._images[name]
            if len(self._expired) < 100_000:  # tombstones only to tell 403 from 404
                self._expired.add(name)
