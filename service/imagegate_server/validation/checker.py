"""Reading one request's parameters while collecting violations.

Values arrive either as decoded JSON or, from a multipart body, as strings (``"2"``
for n, ``"true"`` for stream): ``form_values`` says which. JSON ``null`` counts as
absent, as the spec's ``nullable`` says. The typed getters return None for a value
that is absent or of the wrong type, recording the latter as a violation, so each
rule reads what it needs and moves on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from imagegate_server.validation.results import Code, Violation


def parse_integer(value: object, *, form_values: bool) -> int | None:
    """An integer parameter as validation reads it, or None if it is not one.

    JSON gives ints and integral floats (``2.0``); forms give decimal strings. Callers
    that act on a validated request use this too, so they read what was validated.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if form_values and isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isdigit() and digits.isascii() and len(digits) <= 12:
            return int(text)
    return None


def parse_boolean(value: object, *, form_values: bool) -> bool | None:
    """A boolean parameter as validation reads it (forms say ``true``/``false``)."""
    if isinstance(value, bool):
        return value
    if form_values and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def quoted(values: frozenset[str]) -> str:
    return ", ".join(f"'{value}'" for value in sorted(values))


class Checker:
    """Accumulates violations over one parameter dict."""

    def __init__(self, params: Mapping[str, object], *, form_values: bool) -> None:
        self.params = params
        self.form_values = form_values
        self.violations: list[Violation] = []
        # Parameters already reported as unknown are not judged again on their value.
        self.unknown: set[str] = set()

    def add(self, param: str, message: str, code: Code) -> None:
        self.violations.append(Violation(param, message, code))

    def value(self, name: str) -> object:
        return None if name in self.unknown else self.params.get(name)

    def given(self, name: str) -> bool:
        return self.value(name) is not None

    def known_params(self, accepted: frozenset[str]) -> None:
        for name in self.params:
            if name not in accepted:
                self.unknown.add(name)
                self.add(name, f"Unknown parameter: '{name[:100]}'.", Code.UNKNOWN_PARAMETER)

    # -- typed getters: None means absent or wrongly typed (the latter is recorded) --

    def string(self, name: str) -> str | None:
        value = self.value(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(name, f"Invalid type for '{name}': expected a string.", Code.INVALID_TYPE)
            return None
        return value

    def integer(self, name: str) -> int | None:
        value = self.value(name)
        if value is None:
            return None
        parsed = parse_integer(value, form_values=self.form_values)
        if parsed is None:
            self.add(name, f"Invalid type for '{name}': expected an integer.", Code.INVALID_TYPE)
        return parsed

    def boolean(self, name: str) -> bool | None:
        value = self.value(name)
        if value is None:
            return None
        parsed = parse_boolean(value, form_values=self.form_values)
        if parsed is None:
            self.add(name, f"Invalid type for '{name}': expected a boolean.", Code.INVALID_TYPE)
        return parsed

    def choice(self, name: str, allowed: frozenset[str]) -> str | None:
        value = self.string(name)
        if value is not None and value not in allowed:
            self.add(
                name,
                f"Invalid value: '{value[:100]}'. Supported values are: {quoted(allowed)}.",
                Code.INVALID_VALUE,
            )
            return None
        return value

    def int_range(self, name: str, low: int, high: int | None) -> int | None:
        value = self.integer(name)
        if value is None:
            return None
        if value < low:
            self.add(
                name,
                f"Invalid '{name}': integer below minimum value. "
                f"Expected a value >= {low}, but got {value} instead.",
                Code.INTEGER_BELOW_MIN_VALUE,
            )
            return None
        if high is not None and value > high:
            self.add(
                name,
                f"Invalid '{name}': integer above maximum value. "
                f"Expected a value <= {high}, but got {value} instead.",
                Code.INTEGER_ABOVE_MAX_VALUE,
            )
            return None
        return value
