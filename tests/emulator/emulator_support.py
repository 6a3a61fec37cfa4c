"""Helpers shared by the emulator tests (importable, unlike conftest.py)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

API_KEY = "sk-emulator-test"

SchemaCheck = Callable[[str, Any], None]


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image
