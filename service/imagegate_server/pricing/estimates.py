"""``[estimates]``: the assumptions of reservation estimates (see prices.toml).

An override file may give any subset of :data:`ESTIMATE_KEYS`; the merged table
must have them all (:func:`build_estimates`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagegate_server.pricing.fields import (
    PricesFileError,
    check_int,
    check_only,
    check_quality,
    check_size,
)


@dataclass(frozen=True)
class Estimates:
    """The assumptions of reservation estimates (``[estimates]``; see prices.toml)."""

    auto_quality: str
    standard_sizes: tuple[str, ...]
    chars_per_text_token: int
    prompt_overhead_text_tokens: int
    partial_image_output_tokens: int
    input_image_tokens: int
    high_fidelity_extra_input_image_tokens: int


_ESTIMATE_COUNTS = (
    "chars_per_text_token",
    "prompt_overhead_text_tokens",
    "partial_image_output_tokens",
    "input_image_tokens",
    "high_fidelity_extra_input_image_tokens",
)
ESTIMATE_KEYS = ("auto_quality", "standard_sizes", *_ESTIMATE_COUNTS)


def build_estimates(values: Mapping[str, Any]) -> Estimates:
    """The complete ``[estimates]`` of a merged table (every key present)."""
    for key in ESTIMATE_KEYS:
        if key not in values:
            raise PricesFileError(f"estimates.{key}", "is required")
    return Estimates(**{key: values[key] for key in ESTIMATE_KEYS})


def parse_estimates(table: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[estimates]`` values a file gives (an override may give any subset)."""
    check_only(table, "estimates", set(ESTIMATE_KEYS))
    values: dict[str, Any] = {}
    if "auto_quality" in table:
        values["auto_quality"] = check_quality(table["auto_quality"], "estimates.auto_quality")
    if "standard_sizes" in table:
        sizes = table["standard_sizes"]
        if not isinstance(sizes, list) or not sizes:
            raise PricesFileError("estimates.standard_sizes", "must be a non-empty list of sizes")
        values["standard_sizes"] = tuple(
            check_size(size, f"estimates.standard_sizes[{i}]") for i, size in enumerate(sizes)
        )
    for key in _ESTIMATE_COUNTS:
        if key in table:
            minimum = 1 if key == "chars_per_text_token" else 0
            values[key] = check_int(table[key], f"estimates.{key}", minimum=minimum)
    return values
