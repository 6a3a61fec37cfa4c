"""Test images: the one factory for image bytes (PNG unless asked otherwise)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageColor

# The default colour when a test does not care: opaque red.
RED = "rgb(200, 30, 30)"
Colour = tuple[int, ...] | int | str
Box = tuple[int, int, int, int]


def make_image(
    width: int = 64,
    height: int = 64,
    colour: Colour = RED,
    *,
    mode: str | None = None,
    noise: bool = False,
    seed: int | None = None,
    clear: Box | None = None,
) -> Image.Image:
    """A ``width`` x ``height`` image of one ``colour``.

    ``mode`` defaults from the colour: three values RGB, anything else RGBA.
    ``noise``: random, incompressible pixels instead (for uploads of a given size, or
    to show any resampling); from ``random.Random(seed)`` when a seed is given, else
    from ``os.urandom``. ``clear``: a box (left, top, right, bottom) made fully
    transparent, the area an edit may repaint.
    """
    if mode is None:
        mode = "RGB" if isinstance(colour, tuple) and len(colour) == 3 else "RGBA"
    size = (width, height)
    if noise:
        count = width * height * len(mode)
        pixels = random.Random(seed).randbytes(count) if seed is not None else os.urandom(count)
        image = Image.frombytes(mode, size, pixels)
    else:
        if isinstance(colour, str):
            colour = ImageColor.getcolor(colour, mode)
        image = Image.new(mode, size, colour)
    if clear is not None:
        image.paste((0,) * len(mode), clear)
    return image


def encode(image: Image.Image, format: str = "PNG", **options: object) -> bytes:
    """``image`` as ``format`` file bytes (Pillow's format names and save options)."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png(
    width: int = 64,
    height: int = 64,
    colour: Colour = RED,
    *,
    format: str = "PNG",
    **image: Any,
) -> bytes:
    """The bytes of ``make_image(width, height, colour, **image)``: a PNG, or another
    ``format`` (JPEG, WEBP, ...)."""
    return encode(make_image(width, height, colour, **image), format)


def mask_png(width: int, height: int) -> bytes:
    """Opaque except a transparent square in the top-left corner: the area to edit."""
    return png(width, height, (0, 0, 0, 255), clear=(0, 0, max(1, width // 8), max(1, height // 8)))


def write_png(path: Path, width: int = 64, height: int = 64, **image: Any) -> Path:
    """``png(width, height, **image)`` written to ``path``; returns ``path``."""
    path.write_bytes(png(width, height, **image))
    return path
