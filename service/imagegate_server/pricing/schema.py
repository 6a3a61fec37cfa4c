"""The prices file's schema: TOML data -> validated value classes.

The built-in table and an operator's override file share it; an override may leave
out anything (it is merged over the built-in, see :mod:`.loading`). Every problem
is reported as one :class:`PricesFileError` naming the field by its dotted path
(``models."gpt-image-2".image_out``) and never quoting a value.

Token prices are USD per 1M tokens, kept as :class:`~decimal.Decimal` (TOML floats
are read as decimals, never as binary floats); per-image prices are USD, at most six
decimal places, kept as integer micro-dollars.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from imagegate_server.models import parse_size
from imagegate_server.pricing.money import usd_to_micros

_MODEL_KEY = re.compile(r"[^\s\"]{1,200}")
_QUALITY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_GLOB_CHARS = frozenset("*?[")
_MAX_TOKEN_PRICE = Decimal(1_000_000)  # USD per 1M tokens: a typo guard, not a policy
_MAX_IMAGE_PRICE = Decimal(1_000)  # USD per image
_MAX_COUNT = 10_000_000


class PricesFileError(Exception):
    """A prices file (or the built-in table) is invalid. ``where`` is the dotted field
    path ("" for the whole file); ``problem`` says what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


def is_pattern(key: str) -> bool:
    """Whether a model or alias key is a glob pattern (``gpt-image-2.6-*``)."""
    return any(char in _GLOB_CHARS for char in key)


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


@dataclass(frozen=True)
class TableProfile:
    """Output image tokens per image from a table by quality and size; sizes not in
    the table scale by pixel area from the reference size."""

    reference_size: str
    tokens: Mapping[str, Mapping[str, int]]
    """quality -> size -> output image tokens per image; every quality has the
    reference size."""


@dataclass(frozen=True)
class ShortAxisProfile:
    """Output image tokens per image by the gpt-image-2 formula (see prices.toml)."""

    quality_factors: Mapping[str, int]
    area_offset_pixels: int
    area_divisor: int


OutputTokenProfile = TableProfile | ShortAxisProfile


@dataclass(frozen=True)
class Estimates:
    """The assumptions of reservation estimates (``[estimates]``; see prices.toml)."""

    auto_quality: str
    standard_sizes: tuple[str, ...]
    chars_per_text_token: int
    prompt_overhead_text_tokens: int
    partial_image_output_tokens: int
    input_image_tokens: int
    high_fidelity_extra_input_image_tokens: int


_ESTIMATE_COUNTS = (
    "chars_per_text_token",
    "prompt_overhead_text_tokens",
    "partial_image_output_tokens",
    "input_image_tokens",
    "high_fidelity_extra_input_image_tokens",
)
ESTIMATE_KEYS = ("auto_quality", "standard_sizes", *_ESTIMATE_COUNTS)


@dataclass(frozen=True)
class PriceDocument:
    """One parsed prices file. An override's document may be partial."""

    version: datetime.date | None
    models: Mapping[str, ModelPrices]
    aliases: Mapping[str, str]
    output_tokens: Mapping[str, OutputTokenProfile]
    estimates: Mapping[str, Any]
    """Validated ``[estimates]`` values by key (any subset of :data:`ESTIMATE_KEYS`)."""


def parse_document(data: Mapping[str, Any]) -> PriceDocument:
    """Validate a prices file's data (``tomllib`` with ``parse_float=Decimal``)."""
    _only(data, "", {"version", "models", "aliases", "output_tokens", "estimates"})
    version = _version(data.get("version"))
    models = {
        _model_key(key, "models"): _model(value, f"models.{quote_key(key)}")
        for key, value in _table(data, "models", "").items()
    }
    aliases: dict[str, str] = {}
    for key, target in _table(data, "aliases", "").items():
        where = f"aliases.{quote_key(key)}"
        _model_key(key, "aliases")
        if key in models:
            raise PricesFileError(where, "is also a model entry; a name is one or the other")
        if not isinstance(target, str) or not _MODEL_KEY.fullmatch(target):
            raise PricesFileError(where, "must name a model entry (a string)")
        aliases[key] = target
    profiles = {
        _model_key(key, "output_tokens"): _profile(value, f"output_tokens.{quote_key(key)}")
        for key, value in _table(data, "output_tokens", "").items()
    }
    estimates = _estimates(_table(data, "estimates", ""))
    return PriceDocument(version, models, aliases, profiles, estimates)


def build_estimates(values: Mapping[str, Any]) -> Estimates:
    """The complete ``[estimates]`` of a merged table (every key present)."""
    for key in ESTIMATE_KEYS:
        if key not in values:
            raise PricesFileError(f"estimates.{key}", "is required")
    return Estimates(**{key: values[key] for key in ESTIMATE_KEYS})


def _model(value: object, where: str) -> ModelPrices:
    entry = _as_table(value, where)
    if "per_image" in entry:
        return _per_image_model(entry, where)
    _only(
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
    if not isinstance(profile, str) or not _MODEL_KEY.fullmatch(profile):
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
    _only(
        entry,
        where,
        {"per_image", "default_quality", "default_size"},
        hint=" (a per-image entry; per-token prices need their own entry)",
    )
    per_image: dict[str, dict[str, int]] = {}
    qualities = _as_table(entry["per_image"], f"{where}.per_image")
    if not qualities:
        raise PricesFileError(f"{where}.per_image", "must have at least one quality")
    for quality, sizes_value in qualities.items():
        q_where = f"{where}.per_image.{quote_key(quality)}"
        _quality(quality, q_where)
        sizes = _as_table(sizes_value, q_where)
        if not sizes:
            raise PricesFileError(q_where, "must have at least one size")
        per_image[quality] = {
            _size(size, f"{q_where}.{quote_key(size)}"): _image_price(
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


def _profile(value: object, where: str) -> OutputTokenProfile:
    entry = _as_table(value, where)
    if "formula" in entry:
        _only(entry, where, {"formula", "quality_factors", "area_offset_pixels", "area_divisor"})
        if entry["formula"] != "short-axis":
            raise PricesFileError(f"{where}.formula", 'must be "short-axis"')
        factors_table = _as_table(entry.get("quality_factors"), f"{where}.quality_factors")
        if not factors_table:
            raise PricesFileError(f"{where}.quality_factors", "must have at least one quality")
        factors = {
            _quality(q, f"{where}.quality_factors.{q}"): _int(
                f, f"{where}.quality_factors.{q}", minimum=1, maximum=10_000
            )
            for q, f in factors_table.items()
        }
        return ShortAxisProfile(
            quality_factors=factors,
            area_offset_pixels=_int(
                entry.get("area_offset_pixels"), f"{where}.area_offset_pixels", minimum=0
            ),
            area_divisor=_int(entry.get("area_divisor"), f"{where}.area_divisor", minimum=1),
        )
    reference = entry.get("reference_size")
    if not isinstance(reference, str) or parse_size(reference) is None:
        raise PricesFileError(f"{where}.reference_size", "must be a size like 1024x1024")
    tokens: dict[str, dict[str, int]] = {}
    for quality, sizes_value in entry.items():
        if quality == "reference_size":
            continue
        q_where = f"{where}.{quote_key(quality)}"
        _quality(quality, q_where)
        sizes = _as_table(sizes_value, q_where)
        tokens[quality] = {
            _size(size, f"{q_where}.{quote_key(size)}"): _int(
                count, f"{q_where}.{quote_key(size)}", minimum=1
            )
            for size, count in sizes.items()
        }
        if reference not in tokens[quality]:
            raise PricesFileError(q_where, "must give the reference_size")
    if not tokens:
        raise PricesFileError(where, "must have at least one quality table")
    return TableProfile(reference, tokens)


def _estimates(table: Mapping[str, Any]) -> dict[str, Any]:
    _only(table, "estimates", set(ESTIMATE_KEYS))
    values: dict[str, Any] = {}
    if "auto_quality" in table:
        values["auto_quality"] = _quality(table["auto_quality"], "estimates.auto_quality")
    if "standard_sizes" in table:
        sizes = table["standard_sizes"]
        if not isinstance(sizes, list) or not sizes:
            raise PricesFileError("estimates.standard_sizes", "must be a non-empty list of sizes")
        values["standard_sizes"] = tuple(
            _size(size, f"estimates.standard_sizes[{i}]") for i, size in enumerate(sizes)
        )
    for key in _ESTIMATE_COUNTS:
        if key in table:
            minimum = 1 if key == "chars_per_text_token" else 0
            values[key] = _int(table[key], f"estimates.{key}", minimum=minimum)
    return values


def _version(value: object) -> datetime.date | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        raise PricesFileError("version", "must be a date (2026-12-01), not a date-time")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise PricesFileError("version", "must be a date like 2026-12-01")


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    return _as_table(value, f"{where}.{key}" if where else key)


def _as_table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PricesFileError(where, "must be a table")
    return value


def _only(entry: Mapping[str, Any], where: str, allowed: set[str], hint: str = "") -> None:
    for key in entry:
        if key not in allowed:
            path = f"{where}.{quote_key(key)}" if where else quote_key(key)
            raise PricesFileError(path, f"unknown field{hint}")


def _model_key(key: str, where: str) -> str:
    if not _MODEL_KEY.fullmatch(key):
        raise PricesFileError(
            f"{where}.{quote_key(key[:200])}",
            "a name must be 1-200 characters, no spaces or quotes",
        )
    return key


def _quality(value: object, where: str) -> str:
    if not isinstance(value, str) or not _QUALITY.fullmatch(value):
        raise PricesFileError(where, "must be a quality name like high (lower case)")
    return value


def _size(value: object, where: str) -> str:
    dims = parse_size(value) if isinstance(value, str) else None
    if dims is None or 0 in dims:
        raise PricesFileError(where, "must be a size like 1024x1024")
    return str(value)


def _required_price(entry: Mapping[str, Any], key: str, where: str) -> Decimal:
    price = _token_price(entry, key, where)
    if price is None:
        raise PricesFileError(f"{where}.{key}", "is required (USD per 1M tokens)")
    return price


def _token_price(entry: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    value = entry.get(key)
    if value is None:
        return None
    amount = _decimal(value, f"{where}.{key}", "must be a price in USD per 1M tokens, e.g. 5.00")
    if amount > _MAX_TOKEN_PRICE:
        raise PricesFileError(f"{where}.{key}", "is implausibly high (USD per 1M tokens)")
    return amount


def _image_price(value: object, where: str) -> int:
    amount = _decimal(value, where, "must be a price in USD per image, e.g. 0.040")
    if amount > _MAX_IMAGE_PRICE:
        raise PricesFileError(where, "is implausibly high (USD per image)")
    micros = usd_to_micros(amount)
    if micros != micros.to_integral_value():
        raise PricesFileError(where, "must have at most 6 decimal places (micro-dollars)")
    return int(micros)


def _decimal(value: object, where: str, problem: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PricesFileError(where, problem)
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise PricesFileError(where, "must be a finite amount >= 0")
    return amount


def _int(value: object, where: str, *, minimum: int, maximum: int = _MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise PricesFileError(where, f"must be an integer from {minimum} to {maximum}")
    return value


def quote_key(key: str) -> str:
    """A key as TOML writes it in a dotted path: bare when it can be, else quoted."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
