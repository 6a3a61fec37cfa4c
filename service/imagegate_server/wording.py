"""Counts in text a person reads: "1 image", "2 images", never "1 images".

Limits are often 1 (``max_n = 1``, one worker, one more problem), so any message that
puts a number before a noun goes through :func:`plural`.
"""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural (``many``, default noun + "s")
    unless the count is exactly 1."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or noun + 's'}"
