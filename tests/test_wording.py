"""Counts in messages: "1 image", never "1 images"."""

from __future__ import annotations

import pytest

from imagegate_server.wording import plural


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 images"), (1, "1 image"), (2, "2 images"), (-1, "-1 images")]
)
def test_plural(count: int, expected: str) -> None:
    assert plural(count, "image") == expected


def test_an_irregular_plural() -> None:
    assert plural(1, "more problem", "more problems") == "1 more problem"
    assert plural(3, "entry", "entries") == "3 entries"
