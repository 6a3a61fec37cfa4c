"""Deterministic, plausible token counts for GPT image models.

Shaped after OpenAI's published pricing tables: text tokens roughly one per word or
punctuation mark; input images 65 + 129 per 512-pixel tile after scaling into 2048 and
768; output tokens per quality for a 1024x1024 image, scaled by area; 100 tokens per
partial image.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

_OUTPUT_TOKENS_1024 = {
    "low": 272,
    "medium": 1056,
    "auto": 1056,
    "high": 4160,
    "xhigh": 8320,
    "max": 16640,
}
_PARTIAL_IMAGE_TOKENS = 100


def text_tokens(prompt: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", prompt)))


def image_tokens(width: int, height: int) -> int:
    fit = min(1.0, 2048 / max(width, height, 1))
    scaled_w, scaled_h = width * fit, height * fit
    shrink = min(1.0, 768 / max(1.0, min(scaled_w, scaled_h)))
    tiles = math.ceil(scaled_w * shrink / 512) * math.ceil(scaled_h * shrink / 512)
    return 65 + 129 * tiles


def output_tokens(quality: str, width: int, height: int) -> int:
    base = _OUTPUT_TOKENS_1024.get(quality, 1056)
    return max(1, round(base * width * height / (1024 * 1024)))


def usage(
    prompt: str,
    input_images: Sequence[tuple[int, int]],
    quality: str,
    width: int,
    height: int,
    images: int,
    partial_images: int = 0,
) -> dict[str, Any]:
    text = text_tokens(prompt)
    image = sum(image_tokens(w, h) for w, h in input_images)
    out = images * (output_tokens(quality, width, height) + partial_images * _PARTIAL_IMAGE_TOKENS)
    return {
        "input_tokens": text + image,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image},
        "output_tokens": out,
        "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
        "total_tokens": text + image + out,
    }
