"""Photographic-like pictures that encode to the size OpenAI's do (``real_sizes``).

A picture is the default scene drawn at an eighth of its size and scaled up (soft
shapes on a gradient, like an out-of-focus backdrop, with the model/size/index footer
but not the prompt's words), plus clouds (luminance noise at scales of 4 to 64 pixels,
fixed strength), plus grain (per-pixel noise, half shared by the three channels) whose
strength sets the encoded size. Everything is drawn from the scene's seed, so a
picture is as deterministic as the default one.

Encoded size grows with the grain's strength, in a way that depends on the encoder
(format, quality, alpha) but hardly on the picture, since grain is per pixel and
dominates the bytes: :class:`GrainCalibration` measures bytes per pixel against
strength once per (format, compression, background, size) on a crop of a backdrop of
that size, with the very encoder the answers use, reads the strength for a target off
that curve, and corrects it by one whole picture.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import replace

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from imagegate_server.emulator.real_sizes import interpolate
from imagegate_server.emulator.render import RenderSpec, draw_footer, draw_scene, scene_seed

GRAIN_STRENGTHS = (0.0, 0.005, 0.01, 0.02, 0.035, 0.06, 0.1, 0.17, 0.3, 0.5, 0.8, 1.2)
"""Where the calibration curve is measured (1.0 = the raw noise's full spread)."""
_TILE = 384
_BACKDROP_SHRINK = 8
_CLOUD_SCALES = (64, 32, 16, 8, 4)
_CLOUD_STRENGTH = 0.6
_GREY = (128, 128, 128)
_MASK_GRID = 128

Encoder = Callable[[Image.Image, RenderSpec], bytes]
"""Encodes a picture as the answer for ``spec`` would be (format, quality, metadata)."""


def photo_scene(spec: RenderSpec, grain: float, *, with_text: bool = True) -> Image.Image:
    """The picture for ``spec``: RGB, or RGBA with a cut-out subject when transparent."""
    image, rng = _backdrop(spec, with_text=with_text)
    return _finish(image, _raw_grain(image.size, rng), grain, spec.transparent)


def add_grain(image: Image.Image, spec: RenderSpec, grain: float, salt: str = "") -> Image.Image:
    """``image`` with grain of that strength; fully transparent pixels stay empty."""
    rng = random.Random(scene_seed(spec) + f"grain{salt}".encode())  # noqa: S311 - pictures
    rgb = image.convert("RGB")
    textured = _add(rgb, _scaled(_raw_grain(rgb.size, rng), grain))
    if image.mode != "RGBA":
        return textured
    return _keep_alpha(textured, image.getchannel("A"))


class GrainCalibration:
    """Grain strength per (format, compression, background, size, target), measured
    once: a curve on a tile, then one whole picture to correct what a tile misses (the
    share of a transparent subject's soft edge, the backdrop outside the crop)."""

    def __init__(self) -> None:
        self._curves: dict[_Key, _Curve] = {}
        self._strengths: dict[tuple[_Key, float], float] = {}
        self._lock = threading.Lock()

    def strength(self, spec: RenderSpec, bytes_per_pixel: float, encoder: Encoder) -> float:
        """The grain strength at which ``encoder`` makes ``bytes_per_pixel``."""
        key = (spec.output_format, spec.compression, spec.transparent, spec.width, spec.height)
        with self._lock:  # renders run in threads; the first of a key measures
            strength = self._strengths.get((key, bytes_per_pixel))
            if strength is None:
                curve = self._curves.get(key)
                if curve is None:
                    curve = self._curves[key] = _tile_curve(spec, encoder)
                strength = _corrected(spec, curve, bytes_per_pixel, encoder)
                self._strengths[key, bytes_per_pixel] = strength
        return strength


_Key = tuple[str, int, bool, int, int]
_Curve = list[tuple[float, float]]
"""(grain strength, bytes per pixel), both increasing."""


def _tile_curve(spec: RenderSpec, encoder: Encoder) -> _Curve:
    # A crop of a backdrop of the real size: its gradients and shapes are as smooth per
    # pixel as the pictures', which a small picture's would not be.
    backdrop, rng = _backdrop(_calibration_spec(spec), with_text=False)
    width, height = min(_TILE, spec.width), min(_TILE, spec.height)
    left, top = (spec.width - width) // 2, (spec.height - height) // 2
    image = backdrop.crop((left, top, left + width, top + height))
    tile = replace(spec, width=width, height=height)
    raw = _raw_grain(image.size, rng)
    curve: _Curve = []
    for strength in GRAIN_STRENGTHS:
        encoded = encoder(_finish(image, raw, strength, tile.transparent), tile)
        size = len(encoded) / (width * height)
        # Only where size grows: lossy encoders drop faint grain, and past some strength
        # clipping makes it smaller again.
        if not curve or size > curve[-1][1]:
            curve.append((strength, size))
    return curve


def _corrected(spec: RenderSpec, curve: _Curve, target: float, encoder: Encoder) -> float:
    """The strength for ``target``, after scaling the curve by how far one whole picture
    at the tile's answer lands from it."""
    first = _invert(curve, target)
    picture = photo_scene(_calibration_spec(spec), first, with_text=False)
    measured = len(encoder(picture, spec)) / (spec.width * spec.height)
    return _invert(curve, target * interpolate(curve, first) / measured)


def _calibration_spec(spec: RenderSpec) -> RenderSpec:
    return replace(spec, prompt="imagegate calibration", index=0)


def _invert(curve: _Curve, target: float) -> float:
    """The strength at which the curve reaches ``target``, clamped to its ends."""
    return interpolate([(size, strength) for strength, size in curve], target)


def _backdrop(spec: RenderSpec, *, with_text: bool) -> tuple[Image.Image, random.Random]:
    width, height = spec.width, spec.height
    small = replace(
        spec,
        width=max(1, -(-width // _BACKDROP_SHRINK)),
        height=max(1, -(-height // _BACKDROP_SHRINK)),
        transparent=False,
    )
    # Blurred before scaling up, so shapes have soft edges rather than soft stairs.
    soft = draw_scene(small, with_text=False).convert("RGB").filter(ImageFilter.GaussianBlur(1))
    image = soft.resize((width, height), Image.Resampling.BICUBIC)
    if with_text:
        # The footer only: a prompt's words in large print would add a size that
        # depends on the prompt (up to twice the target for WebP at low compression).
        draw_footer(ImageDraw.Draw(image), spec)
    rng = random.Random(scene_seed(spec) + b"texture")  # noqa: S311 - pictures, not secrets
    image = _add(image, _clouds(width, height, rng))
    return image, rng


def _clouds(width: int, height: int, rng: random.Random) -> Image.Image:
    """Smooth luminance noise whose octaves halve in strength as they halve in scale
    (a 1/f spectrum, as in natural images)."""
    field: Image.Image | None = None
    for level, scale in enumerate(_CLOUD_SCALES):
        size = (max(1, -(-width // scale)), max(1, -(-height // scale)))
        octave = _noise("L", size, rng)
        if field is None:
            field = octave
        else:
            # Weights 2^-level of the coarsest: this octave's share of the sum so far.
            share = 1 / (2 ** (level + 1) - 1)
            field = Image.blend(field.resize(size, Image.Resampling.BILINEAR), octave, share)
    assert field is not None
    field = field.resize((width, height), Image.Resampling.BICUBIC)
    clouds = Image.blend(Image.new("L", field.size, 128), field, _CLOUD_STRENGTH)
    return Image.merge("RGB", (clouds, clouds, clouds))


def _raw_grain(size: tuple[int, int], rng: random.Random) -> Image.Image:
    shared = _noise("L", size, rng)
    own = _noise("RGB", size, rng)
    return Image.blend(Image.merge("RGB", (shared, shared, shared)), own, 0.5)


def _finish(image: Image.Image, raw: Image.Image, grain: float, transparent: bool) -> Image.Image:
    textured = _add(image, _scaled(raw, grain))
    return _cut_out(textured) if transparent else textured


def _scaled(raw: Image.Image, strength: float) -> Image.Image:
    # blend() extrapolates past 1.0 and clips, so strength is the noise's amplitude.
    return Image.blend(Image.new("RGB", raw.size, _GREY), raw, strength)


def _add(image: Image.Image, centred: Image.Image) -> Image.Image:
    """``image`` plus a signed offset stored around 128 (clipped to 0..255)."""
    return ImageChops.add(image, centred, 1.0, -128)


def _cut_out(image: Image.Image) -> Image.Image:
    """A soft-edged elliptical subject on empty pixels, as transparent answers look."""
    # Drawn on a fixed grid and scaled, so the soft edge is the same share of any size.
    small = Image.new("L", (_MASK_GRID, _MASK_GRID), 0)
    inset = _MASK_GRID // 10
    ImageDraw.Draw(small).ellipse((inset, inset, _MASK_GRID - inset, _MASK_GRID - inset), fill=255)
    small = small.filter(ImageFilter.GaussianBlur(_MASK_GRID / 64))
    return _keep_alpha(image, small.resize(image.size, Image.Resampling.BICUBIC))


def _keep_alpha(rgb: Image.Image, alpha: Image.Image) -> Image.Image:
    """RGBA with ``alpha``; fully transparent pixels are zero (and compress so)."""
    image = rgb.convert("RGBA")
    image.putalpha(alpha)
    empty = alpha.point(lambda a: 255 if a else 0)
    return Image.composite(image, Image.new("RGBA", image.size, (0, 0, 0, 0)), empty)


def _noise(mode: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * bands))
