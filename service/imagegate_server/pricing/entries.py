"""``[models]`` entries: what one model costs, per token or per image.

Token prices are USD per 1M tokens, kept as :class:`~decimal.Decimal` (TOML floats
are read as decimals, never as binary floats); per-image prices are USD, at most six
decimal places, kept as integer micro-dollars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from imagegate_server.models import parse_size
from imagegate_server.pricing.fields import (
    MODEL_KEY,
    PricesFileError,
    as_table,
    check_amount,
    check_only,
    check_quality,
    check_size,
    quote_key,
)
from imagegate_server.pricing.money import usd_to_micros

_MAX_TOKEN_PRICE = Decimal(1_000_000)  # USD per 1M tokens: a typo guard, not a policy
_MAX_IMAGE_PRICE = Decimal(1_000)  # USD per image


@dataclass(frozen=True)
class TokenPrices:
    """A GPT image model, priced per token. Prices are USD per 1M tokens, which is
    the same number as micro-dollars per token."""

    text_in: Decimal
    image_in: Decimal
    image_out: Decimal
    output_tokens: str
    """The output-token profile (``[output_tokens.<name>]``) its estimates use."""
    text_out: Decimal | None = None
    """None when OpenAI lists no rate: text output is then priced as image output."""
    text_in_cached: Decimal | None = None
    """Kept for completeness: Images-API usage reports no cached tokens."""
    image_in_cached: Decimal | None = None


@dataclass(frozen=True)
class PerImagePrices:
    """A DALL-E model, priced per image by quality and size (no usage reported)."""

    per_image: Mapping[str, Mapping[str, int]]
    """quality -> size (``WxH``) -> micro-dollars per image."""
    default_quality: str
    """The quality of a call that names none (or ``auto``)."""
    default_size: str


ModelPrices = TokenPrices | PerImagePrices


def parse_model(value: object, where: str) -> ModelPrices:
    """One ``[models.<name>]`` entry: per-image when it has ``per_image``, else per-token."""
    entry = as_table(value, where)
    if "per_image" in entry:
        return _per_image_model(entry, where)
    check_only(
        entry,
        where,
        {
            "text_in",
            "text_in_cached",
            "image_in",
            "image_in_cached",
            "image_out",
            "text_out",
            "output_tokens",
        },
        hint=" (a per-token entry; a per-image entry has per_image)",
    )
    text_in = _required_price(entry, "text_in", where)
    image_in = _required_price(entry, "image_in", where)
    image_out = _required_price(entry, "image_out", where)
    profile = entry.get("output_tokens")
    if profile is None:
        raise PricesFileError(f"{where}.output_tokens", "is required (an output-token profile)")
    if not isinstance(profile, str) or not MODEL_KEY.fullmatch(profile):
        raise PricesFileError(f"{where}.output_tokens", "must name an [output_tokens] profile")
    return TokenPrices(
        text_in=text_in,
        image_in=image_in,
        image_out=image_out,
        output_tokens=profile,
        text_out=_token_price(entry, "text_out", where),
        text_in_cached=_token_price(entry, "text_in_cached", where),
        image_in_cached=_token_price(entry, "image_in_cached", where),
    )


def _per_image_model(entry: Mapping[str, Any], where: str) -> PerImagePrices:
    check_only(
        entry,
        where,
        {"per_image", "default_quality", "default_size"},
        hint=" (a per-image entry; per-token prices need their own entry)",
    )
    per_image: dict[str, dict[str, int]] = {}
    qualities = as_table(entry["per_image"], f"{where}.per_image")
    if not qualities:
        raise PricesFileError(f"{where}.per_image", "must have at least one quality")
    for quality, sizes_value in qualities.items():
        q_where = f"{where}.per_image.{quote_key(quality)}"
        check_quality(quality, q_where)
        sizes = as_table(sizes_value, q_where)
        if not sizes:
            raise PricesFileError(q_where, "must have at least one size")
        per_image[quality] = {
            check_size(size, f"{q_where}.{quote_key(size)}"): _image_price(
                price, f"{q_where}.{quote_key(size)}"
            )
            for size, price in sizes.items()
        }
    default_quality = entry.get("default_quality")
    if default_quality not in per_image:
        raise PricesFileError(f"{where}.default_quality", "must be one of its per_image qualities")
    default_size = entry.get("default_size")
    if not isinstance(default_size, str) or parse_size(default_size) is None:
        raise PricesFileError(f"{where}.default_size", "must be a size like 1024x1024")
    return PerImagePrices(per_image, default_quality, default_size)


def _required_price(entry: Mapping[str, Any], key: str, where: str) -> Decimal:
    price = _token_price(entry, key, where)
    if price is None:
        raise PricesFileError(f"{where}.{key}", "is required (USD per 1M tokens)")
    return price


def _token_price(entry: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    value = entry.get(key)
    if value is None:
        return None
    amount = check_amount(
        value, f"{where}.{key}", "must be a price in USD per 1M tokens, e.g. 5.00"
    )
    if amount > _MAX_TOKEN_PRICE:
        raise PricesFileError(f"{where}.{key}", "is implausibly high (USD per 1M tokens)")
    return amount


def _image_price(value: object, where: str) -> int:
    amount = check_amount(value, where, "must be a price in USD per image, e.g. 0.040")
    if amount > _MAX_IMAGE_PRICE:
        raise PricesFileError(where, "is implausibly high (USD per image)")
    micros = usd_to_micros(amount)
    if micros != micros.to_integral_value():
        raise PricesFileError(where, "must have at most 6 decimal places (micro-dollars)")
    return int(micros)
