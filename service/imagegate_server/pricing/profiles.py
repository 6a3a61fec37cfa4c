"""``[output_tokens]`` profiles, and the output image tokens per image they estimate
from a call's quality and size.

Only reservations use these: a finished call is priced from its reported usage.
What the call leaves open is estimated on the dear side, so a reservation is an
upper bound of the usual bill without being a worst case of every parameter:

- quality ``auto`` or unset: the table's ``auto_quality`` (high, see prices.toml);
  a quality the profile does not know: its dearest quality;
- size ``auto``, unset or unparseable: the dearest of the standard sizes;
- a size a table profile does not list: its reference size's count scaled by pixel
  area (rounded up); the gpt-image-2 formula takes any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagegate_server.models import parse_size
from imagegate_server.pricing.estimates import Estimates
from imagegate_server.pricing.fields import (
    PricesFileError,
    as_table,
    check_int,
    check_only,
    check_quality,
    check_size,
    quote_key,
)

_AUTO = ("", "auto")


@dataclass(frozen=True)
class TableProfile:
    """Output image tokens per image from a table by quality and size; sizes not in
    the table scale by pixel area from the reference size."""

    reference_size: str
    tokens: Mapping[str, Mapping[str, int]]
    """quality -> size -> output image tokens per image; every quality has the
    reference size."""


@dataclass(frozen=True)
class ShortAxisProfile:
    """Output image tokens per image by the gpt-image-2 formula (see prices.toml)."""

    quality_factors: Mapping[str, int]
    area_offset_pixels: int
    area_divisor: int


OutputTokenProfile = TableProfile | ShortAxisProfile


def parse_profile(value: object, where: str) -> OutputTokenProfile:
    """One ``[output_tokens.<name>]`` profile: the formula when it has ``formula``, else a
    table by quality and size."""
    entry = as_table(value, where)
    if "formula" in entry:
        check_only(
            entry, where, {"formula", "quality_factors", "area_offset_pixels", "area_divisor"}
        )
        if entry["formula"] != "short-axis":
            raise PricesFileError(f"{where}.formula", 'must be "short-axis"')
        factors_table = as_table(entry.get("quality_factors"), f"{where}.quality_factors")
        if not factors_table:
            raise PricesFileError(f"{where}.quality_factors", "must have at least one quality")
        factors = {
            check_quality(q, f"{where}.quality_factors.{q}"): check_int(
                f, f"{where}.quality_factors.{q}", minimum=1, maximum=10_000
            )
            for q, f in factors_table.items()
        }
        return ShortAxisProfile(
            quality_factors=factors,
            area_offset_pixels=check_int(
                entry.get("area_offset_pixels"), f"{where}.area_offset_pixels", minimum=0
            ),
            area_divisor=check_int(entry.get("area_divisor"), f"{where}.area_divisor", minimum=1),
        )
    reference = entry.get("reference_size")
    if not isinstance(reference, str) or parse_size(reference) is None:
        raise PricesFileError(f"{where}.reference_size", "must be a size like 1024x1024")
    tokens: dict[str, dict[str, int]] = {}
    for quality, sizes_value in entry.items():
        if quality == "reference_size":
            continue
        q_where = f"{where}.{quote_key(quality)}"
        check_quality(quality, q_where)
        sizes = as_table(sizes_value, q_where)
        tokens[quality] = {
            check_size(size, f"{q_where}.{quote_key(size)}"): check_int(
                count, f"{q_where}.{quote_key(size)}", minimum=1
            )
            for size, count in sizes.items()
        }
        if reference not in tokens[quality]:
            raise PricesFileError(q_where, "must give the reference_size")
    if not tokens:
        raise PricesFileError(where, "must have at least one quality table")
    return TableProfile(reference, tokens)


def output_tokens_per_image(
    profile: OutputTokenProfile, estimates: Estimates, *, quality: str | None, size: str | None
) -> int:
    """Estimated output image tokens of one final image (partial images not included)."""
    known = profile.tokens if isinstance(profile, TableProfile) else profile.quality_factors
    wanted = estimates.auto_quality if quality is None or quality in _AUTO else quality
    qualities = [wanted] if wanted in known else list(known)
    dims = parse_size(size) if size is not None else None
    if dims is None or 0 in dims:
        sizes = [_dims(standard) for standard in estimates.standard_sizes]
    else:
        sizes = [dims]
    return max(_tokens(profile, q, w, h) for q in qualities for w, h in sizes)


def _tokens(profile: OutputTokenProfile, quality: str, width: int, height: int) -> int:
    if isinstance(profile, ShortAxisProfile):
        return _short_axis(profile, quality, width, height)
    table = profile.tokens[quality]
    listed = table.get(f"{width}x{height}")
    if listed is not None:
        return listed
    ref_w, ref_h = _dims(profile.reference_size)
    # Ceiling division in integers: the area rule rounded up.
    return -(-table[profile.reference_size] * width * height // (ref_w * ref_h))


def _short_axis(profile: ShortAxisProfile, quality: str, width: int, height: int) -> int:
    """The gpt-image-2 count: a per-quality factor f sets the long axis's resolution,
    the short axis gets f x short/long (rounded half up), and the product scales with
    the pixel area plus a fixed offset. All integer arithmetic, rounded up at the end."""
    factor = profile.quality_factors[quality]
    long_edge, short_edge = max(width, height), min(width, height)
    short_axis = (2 * factor * short_edge + long_edge) // (2 * long_edge)
    scaled = factor * short_axis * (profile.area_offset_pixels + width * height)
    return max(1, -(-scaled // profile.area_divisor))


def _dims(size: str) -> tuple[int, int]:
    dims = parse_size(size)
    if dims is None:  # the schema validated every size it stores
        raise ValueError(f"not a size: {size[:40]!r}")
    return dims
