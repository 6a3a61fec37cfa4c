"""Helpers shared by the client tests."""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from imagegate_server.cli import build_parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The real ``imagegate`` parser, so the tests see what users get."""
    return build_parser().parse_args(list(argv))


def png_bytes(
    width: int = 64, height: int = 64, colour: tuple[int, ...] = (200, 30, 30, 255)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def write_png(path: Path, width: int = 64, height: int = 64) -> Path:
    path.write_bytes(png_bytes(width, height))
    return path
