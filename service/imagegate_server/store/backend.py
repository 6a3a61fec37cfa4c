"""The face every backend shows the store (:mod:`.local`, :mod:`.s3`): raw
operations on keys, failures already turned into
:class:`~imagegate_server.errors.StoreUnavailable`. Bounds, metrics, spans and
accounting are the store's (:mod:`.results`), once for all backends.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Chunk = bytes | bytearray | memoryview
"""Image bytes as the mapping stage has them (a memoryview of a decoded buffer: no copy)."""
Source = Chunk | AsyncIterable[Chunk]
"""A whole image, or its chunks as they are decoded."""


@dataclass(frozen=True, slots=True)
class Listed:
    """An object found by a sweep: enough to delete it and account for it."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class Attributes:
    """What is written beside an object's bytes."""

    content_type: str
    expires: datetime.datetime
    metadata: Mapping[str, str]


class Opened(Protocol):
    """A stored object being read: its attributes, then its bytes in chunks."""

    size: int
    attributes: Attributes

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    name: str
    """``local`` or ``s3`` (the metrics' ``backend`` label)."""
    max_link_lifetime: datetime.timedelta

    async def write(self, key: str, source: Source, attributes: Attributes) -> int:
        """Store ``source`` under ``key``, visible whole or not at all; its size."""

    async def head(self, key: str) -> tuple[int, Attributes] | None:
        """Size and attributes of ``key``, or None when there is no such object."""

    async def open(self, key: str) -> Opened | None:
        """``key`` to read, or None when there is no such object."""

    async def sign(self, key: str, expires: datetime.datetime) -> str:
        """A URL that GETs ``key`` until ``expires`` with no other credential."""

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys``; a key already gone is no error."""

    async def expired(self, now: datetime.datetime, limit: int) -> list[Listed]:
        """Up to ``limit`` objects whose expiry slot is at or before ``now``."""

    async def aclose(self) -> None: ...
