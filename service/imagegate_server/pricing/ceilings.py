"""The most tokens a call can have used, by what it asked for.

A reported ``usage`` is what a call is charged by, so it is no number to take on
trust: 1e15 tokens once charged a client $30,000,000,000 (and locked it out for a
month). A usage beyond the call's :class:`UsageCeiling` is no bill but an upstream's
mistake, and the call is charged its estimate instead (the gateway's mapping stage
decides; this only says where the ceiling is).

The ceiling is far above any real bill, not an estimate: it must never turn a real
bill into an anomaly. Per call, with :data:`MARGIN` over each term:

- input: the prompt's UTF-8 bytes (a byte-level tokenizer makes at most one token
  per byte) plus the prompt overhead, and per input image (plus one, for a mask or
  markup) the table's input-image tokens with the high-fidelity extra and
  :data:`IMAGE_TEXT_TOKENS` (edits bill 16-40 text tokens per image);
- output: per image, the profile's dearest quality at the call's size (``auto`` or
  none: the dearer of the standard sizes and :data:`LARGEST_SIZE`), plus each partial
  image's tokens, plus :data:`TEXT_OUTPUT_TOKENS` of text.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegate_server.models import parse_size
from imagegate_server.pricing.entries import TokenPrices
from imagegate_server.pricing.profiles import TableProfile, output_tokens_per_image
from imagegate_server.pricing.table import PriceTable
from imagegate_server.pricing.usage import TokenUsage

MARGIN = 2
IMAGE_TEXT_TOKENS = 64
TEXT_OUTPUT_TOKENS = 8192
LARGEST_SIZE = "3840x2160"
"""The largest image an OpenAI model makes (gpt-image-2's pixel limit)."""


@dataclass(frozen=True)
class UsageCeiling:
    input_tokens: int
    output_tokens: int

    def admits(self, usage: TokenUsage) -> bool:
        return usage.input_tokens <= self.input_tokens and usage.output_tokens <= self.output_tokens


def usage_ceiling(
    table: PriceTable,
    model: str,
    *,
    size: str | None,
    n: int,
    prompt_bytes: int,
    input_images: int,
    partial_images: int,
) -> UsageCeiling | None:
    """The ceiling of a call to ``model``; None when the table prices it by anything
    but tokens (per image, or not at all): then usage charges nothing."""
    entry = table.prices(model)
    if not isinstance(entry, TokenPrices):
        return None
    est = table.estimates
    profile = table.output_tokens[entry.output_tokens]
    qualities = profile.tokens if isinstance(profile, TableProfile) else profile.quality_factors
    sizes: list[str | None] = [size]
    if size is None or parse_size(size) is None:
        sizes = [None, LARGEST_SIZE]  # None: the dearest standard size
    per_image = max(
        output_tokens_per_image(profile, est, quality=quality, size=candidate)
        for quality in qualities
        for candidate in sizes
    )
    per_input_image = (
        est.input_image_tokens + est.high_fidelity_extra_input_image_tokens + IMAGE_TEXT_TOKENS
    )
    input_tokens = prompt_bytes + est.prompt_overhead_text_tokens
    input_tokens += (input_images + 1) * per_input_image
    output_tokens = n * (
        per_image + partial_images * est.partial_image_output_tokens + TEXT_OUTPUT_TOKENS
    )
    return UsageCeiling(MARGIN * input_tokens, MARGIN * output_tokens)
