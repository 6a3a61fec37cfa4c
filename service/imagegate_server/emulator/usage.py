"""Deterministic, plausible token counts for GPT image models.

Shaped after OpenAI's published pricing: text tokens roughly one per word or
punctuation mark; input images 65 + 129 per 512-pixel tile after scaling into 2048 and
768; output tokens per image as OpenAI counts them for the model, quality and size
(the price table's token profiles: gpt-image-1's table, gpt-image-2's formula...,
the one home of those facts); 100 tokens per partial image.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

from imagegate_server.pricing import PriceTable, load_prices
from imagegate_server.pricing.profiles import output_tokens_per_image

_PARTIAL_IMAGE_TOKENS = 100
# Models the price table has no profile for count like gpt-image-1.
_FALLBACK_PROFILE = "gpt-image-1"


def text_tokens(prompt: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", prompt)))


def image_tokens(width: int, height: int) -> int:
    fit = min(1.0, 2048 / max(width, height, 1))
    scaled_w, scaled_h = width * fit, height * fit
    shrink = min(1.0, 768 / max(1.0, min(scaled_w, scaled_h)))
    tiles = math.ceil(scaled_w * shrink / 512) * math.ceil(scaled_h * shrink / 512)
    return 65 + 129 * tiles


@functools.cache
def _prices() -> PriceTable:
    return load_prices()


def output_tokens(model: str, quality: str, width: int, height: int) -> int:
    """Output image tokens of one image (``quality`` as rendered: never ``auto``)."""
    table = _prices()
    entry = table.prices(model)
    profile = getattr(entry, "output_tokens", _FALLBACK_PROFILE)
    if profile not in table.output_tokens:
        profile = _FALLBACK_PROFILE
    return output_tokens_per_image(
        table.output_tokens[profile], table.estimates, quality=quality, size=f"{width}x{height}"
    )


def usage(
    model: str,
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
    per_image = output_tokens(model, quality, width, height)
    out = images * (per_image + partial_images * _PARTIAL_IMAGE_TOKENS)
    return {
        "input_tokens": text + image,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image},
        "output_tokens": out,
        "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
        "total_tokens": text + image + out,
    }
