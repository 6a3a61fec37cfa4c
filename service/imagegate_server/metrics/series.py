"""What every metric here shares: the long histogram buckets, and label children
looked up once per label tuple and cached, so recording costs a dictionary lookup
and an increment.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import disable_created_metrics

# Image calls take minutes (GPT image models at high quality: 1-2 min, and the
# upstream timeout defaults to 300 s), so buckets reach well past 300 s.
LONG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0,
    60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0,
)  # fmt: skip

# ``*_created`` series double the series count and no dashboard here reads them.
# Here, so that it runs before any module of this package defines a metric.
disable_created_metrics()  # type: ignore[no-untyped-call]

C = TypeVar("C")


class Children(Generic[C]):
    """``metric.labels(*values)`` cached per tuple (values are bounded, so is this)."""

    __slots__ = ("_cache", "_labels")

    def __init__(self, labelled: Callable[..., C]) -> None:
        self._labels = labelled
        self._cache: dict[Hashable, C] = {}

    def __call__(self, *values: str) -> C:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._labels(*values)
        return child
