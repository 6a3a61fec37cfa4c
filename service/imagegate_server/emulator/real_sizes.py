"""How many bytes OpenAI's images take once encoded: the targets of ``real_sizes``.

The emulator's default pictures are flat shapes that compress to almost nothing (73 KiB
for a 1536x1024 PNG), so benchmarks through it understate what moving, base64-decoding
and slicing real answers costs. With ``EmulatorConfig.real_sizes`` it makes pictures
whose encoded size is :func:`target_bytes` instead.

Sources and assumptions (no published measurement of OpenAI's output sizes was found;
these are estimates, to be replaced by measured ones when someone has them):

- PNG: GPT image answers at 1024x1024 are typically 1.5-3 MB and at 1536x1024 2-4 MB
  (the figures of issue 13 and its task, "OpenAI's are megabytes"; not measured here).
  That is 12-20 bits per pixel, what 8-bit RGB of detailed, photo-like content takes
  losslessly. Medium quality is put at 1.6 bytes per pixel: 1.7 MB at 1024x1024,
  2.5 MB at 1536x1024.
- Quality: higher qualities render more fine detail, which lossless and lossy encoders
  alike pay for. The factors below (low 0.75 ... max 1.55 of medium) are assumptions
  that keep every GPT quality inside the ranges above; DALL-E's ``standard`` is medium
  and ``hd`` is high. The model enters only through its qualities and sizes: no source
  separates the models' detail at equal quality.
- JPEG and WebP: ``output_compression`` is the encoder quality (OpenAI's default 100).
  The anchors are typical bytes per pixel of detailed photographs from libjpeg-turbo and
  libwebp at those qualities (JPEG at 100 about 0.6 B/px, at 75 about 0.14; WebP about
  three quarters of JPEG at equal quality), linearly interpolated in between.
- Transparent backgrounds (PNG, WebP): a cut-out subject over empty pixels, assumed to
  take 0.6 of the opaque size.
- GIF and SVG: no figures at all, so they keep the default rendering (None here).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

PNG_BYTES_PER_PIXEL = 1.6
"""Opaque PNG at medium quality."""

# (output_compression, bytes per pixel at medium quality), ascending.
LOSSY_BYTES_PER_PIXEL: dict[str, tuple[tuple[int, float], ...]] = {
    "jpeg": ((0, 0.03), (25, 0.06), (50, 0.09), (75, 0.14), (90, 0.25), (95, 0.35), (100, 0.6)),
    "webp": ((0, 0.02), (25, 0.045), (50, 0.07), (75, 0.11), (90, 0.19), (95, 0.26), (100, 0.45)),
}

QUALITY_FACTORS: dict[str, float] = {
    "low": 0.75,
    "medium": 1.0,
    "auto": 1.0,
    "standard": 1.0,
    "high": 1.25,
    "hd": 1.25,
    "xhigh": 1.4,
    "max": 1.55,
}
"""Detail relative to medium; a quality not listed counts as medium."""

TRANSPARENT_FACTOR = 0.6

SIZED_FORMATS = frozenset({"png", "jpeg", "webp"})
"""The formats :func:`target_bytes_per_pixel` has figures for."""


def target_bytes_per_pixel(
    output_format: str, quality: str, compression: int, transparent: bool
) -> float | None:
    """Typical encoded bytes per pixel of an OpenAI answer; None for GIF and SVG."""
    if output_format == "png":
        base = PNG_BYTES_PER_PIXEL
    elif output_format in LOSSY_BYTES_PER_PIXEL:
        base = interpolate(LOSSY_BYTES_PER_PIXEL[output_format], compression)
    else:
        return None
    factor = QUALITY_FACTORS.get(quality, 1.0)
    if transparent and output_format != "jpeg":
        factor *= TRANSPARENT_FACTOR
    return base * factor


def target_bytes(
    output_format: str,
    quality: str,
    compression: int,
    transparent: bool,
    width: int,
    height: int,
) -> int | None:
    """Typical encoded size of one OpenAI answer image; None for GIF and SVG."""
    per_pixel = target_bytes_per_pixel(output_format, quality, compression, transparent)
    return None if per_pixel is None else round(per_pixel * width * height)


def interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    """Piecewise-linear y at ``x`` through ``points`` (x increasing), clamped to the ends."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]
