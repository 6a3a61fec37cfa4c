"""The prices file's schema: TOML data -> one validated :class:`PriceDocument`.

The built-in table and an operator's override file share it; an override may leave
out anything (it is merged over the built-in, see :mod:`.loading`). This module
checks the file's top level and ``[aliases]``; the sections have their own modules:
``[models]`` entries in :mod:`.entries`, ``[output_tokens]`` profiles in
:mod:`.profiles`, ``[estimates]`` in :mod:`.estimates`, and the shared field checks
and :class:`~.fields.PricesFileError` in :mod:`.fields`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagegate_server.pricing.entries import ModelPrices, parse_model
from imagegate_server.pricing.estimates import parse_estimates
from imagegate_server.pricing.fields import (
    MODEL_KEY,
    PricesFileError,
    as_table,
    check_model_key,
    check_only,
    quote_key,
)
from imagegate_server.pricing.profiles import OutputTokenProfile, parse_profile


@dataclass(frozen=True)
class PriceDocument:
    """One parsed prices file. An override's document may be partial."""

    version: datetime.date | None
    models: Mapping[str, ModelPrices]
    aliases: Mapping[str, str]
    output_tokens: Mapping[str, OutputTokenProfile]
    estimates: Mapping[str, Any]
    """Validated ``[estimates]`` values by key (any subset of :data:`.estimates.ESTIMATE_KEYS`)."""


def parse_document(data: Mapping[str, Any]) -> PriceDocument:
    """Validate a prices file's data (``tomllib`` with ``parse_float=Decimal``)."""
    check_only(data, "", {"version", "models", "aliases", "output_tokens", "estimates"})
    version = _version(data.get("version"))
    models = {
        check_model_key(key, "models"): parse_model(value, f"models.{quote_key(key)}")
        for key, value in _section(data, "models").items()
    }
    aliases: dict[str, str] = {}
    for key, target in _section(data, "aliases").items():
        where = f"aliases.{quote_key(key)}"
        check_model_key(key, "aliases")
        if key in models:
            raise PricesFileError(where, "is also a model entry; a name is one or the other")
        if not isinstance(target, str) or not MODEL_KEY.fullmatch(target):
            raise PricesFileError(where, "must name a model entry (a string)")
        aliases[key] = target
    profiles = {
        check_model_key(key, "output_tokens"): parse_profile(
            value, f"output_tokens.{quote_key(key)}"
        )
        for key, value in _section(data, "output_tokens").items()
    }
    estimates = parse_estimates(_section(data, "estimates"))
    return PriceDocument(version, models, aliases, profiles, estimates)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return {} if value is None else as_table(value, key)


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
