"""The prices file's building blocks: its error and the checks its fields share.

Every problem is one :class:`PricesFileError` naming the field by its dotted path
(``models."gpt-image-2".image_out``, see :func:`quote_key`) and never quoting a
value. Each ``check_*`` function returns the value it validated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from imagegate_server.models import parse_size

MODEL_KEY = re.compile(r"[^\s\"]{1,200}")
"""A model, alias or profile name: 1-200 characters, no spaces or quotes."""
_QUALITY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_GLOB_CHARS = frozenset("*?[")
MAX_COUNT = 10_000_000


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


def as_table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PricesFileError(where, "must be a table")
    return value


def check_only(entry: Mapping[str, Any], where: str, allowed: set[str], hint: str = "") -> None:
    for key in entry:
        if key not in allowed:
            path = f"{where}.{quote_key(key)}" if where else quote_key(key)
            raise PricesFileError(path, f"unknown field{hint}")


def check_model_key(key: str, where: str) -> str:
    if not MODEL_KEY.fullmatch(key):
        raise PricesFileError(
            f"{where}.{quote_key(key[:200])}",
            "a name must be 1-200 characters, no spaces or quotes",
        )
    return key


def check_quality(value: object, where: str) -> str:
    if not isinstance(value, str) or not _QUALITY.fullmatch(value):
        raise PricesFileError(where, "must be a quality name like high (lower case)")
    return value


def check_size(value: object, where: str) -> str:
    dims = parse_size(value) if isinstance(value, str) else None
    if dims is None or 0 in dims:
        raise PricesFileError(where, "must be a size like 1024x1024")
    return str(value)


def check_amount(value: object, where: str, problem: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PricesFileError(where, problem)
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise PricesFileError(where, "must be a finite amount >= 0")
    return amount


def check_int(value: object, where: str, *, minimum: int, maximum: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise PricesFileError(where, f"must be an integer from {minimum} to {maximum}")
    return value


def quote_key(key: str) -> str:
    """A key as TOML writes it in a dotted path: bare when it can be, else quoted."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
