"""What each client holds in the store: bytes and objects, for a storage quota
(RESOURCE_EXHAUSTED with ``QuotaFailure``) and for ``GetQuota``.

The store reports what it knows: sizes when a write becomes visible, sizes and
owners when the sweeper or a delete removes objects (the owner is in the key, so
the sweeper needs no metadata read). The persistent ledger, shared by replicas,
will live beside the limiter's state; :class:`MemoryLedger` is this process's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Holding:
    """What one client holds."""

    size: int = 0
    """Bytes."""
    objects: int = 0


class StorageLedger(Protocol):
    """Per-client bytes and objects held in the store (``None``: anonymous calls)."""

    async def stored(self, client: str | None, size: int) -> None:
        """An object of ``size`` bytes became visible."""

    async def removed(self, client: str | None, size: int, objects: int = 1) -> None:
        """``objects`` holding ``size`` bytes in all were deleted."""

    async def holding(self, client: str | None) -> Holding:
        """What ``client`` holds now."""


class MemoryLedger:
    """The ledger of one process, in memory (lost on restart: objects written before
    it are not counted, and their deletions never take a client below zero)."""

    def __init__(self) -> None:
        self._held: dict[str | None, Holding] = {}

    async def stored(self, client: str | None, size: int) -> None:
        held = self._held.get(client, Holding())
        self._held[client] = Holding(held.size + max(size, 0), held.objects + 1)

    async def removed(self, client: str | None, size: int, objects: int = 1) -> None:
        held = self._held.get(client)
        if held is None:
            return
        left = Holding(max(held.size - max(size, 0), 0), max(held.objects - objects, 0))
        if left.objects == 0:
            del self._held[client]  # bounded: only clients that hold something
        else:
            self._held[client] = left

    async def holding(self, client: str | None) -> Holding:
        return self._held.get(client, Holding())
