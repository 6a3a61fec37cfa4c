"""Output image tokens per image, estimated from a call's quality and size.

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

from imagegate_server.models import parse_size
from imagegate_server.pricing.schema import (
    Estimates,
    OutputTokenProfile,
    ShortAxisProfile,
    TableProfile,
)

_AUTO = ("", "auto")


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
