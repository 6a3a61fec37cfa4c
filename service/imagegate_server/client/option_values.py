"""What an option's text becomes: option names, enum spellings, the argparse types of
scalar fields, and ``--extra KEY=JSON``.

Only the wire range of a value is checked here; the gateway owns the semantic limits
(n 1-10 and so on) and reports them with the field name.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor


def option_name(path: Sequence[str]) -> str:
    """``("svg", "reasoning", "effort")`` -> ``--svg-reasoning-effort``."""
    return "--" + "-".join(part.replace("_", "-") for part in path)


def enum_choices(enum: EnumDescriptor) -> dict[str, int]:
    """OpenAI's spelling of each value: ``QUALITY_HIGH`` -> ``high`` (UNSPECIFIED left out).

    The prefix is read off the zero value (``QUALITY_UNSPECIFIED``) rather than
    derived from the type name, so it is right whatever the enum is called.
    """
    zero = enum.values_by_number[0].name
    prefix = zero.removesuffix("UNSPECIFIED")
    return {
        value.name.removeprefix(prefix).lower(): value.number
        for value in enum.values
        if value.number != 0
    }


_INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
}


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range {low}..{high}")
        return value

    return parse


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (use true or false)")


def is_integer(field: FieldDescriptor) -> bool:
    return field.type in _INT_RANGES


def value_type(field: FieldDescriptor) -> Callable[[str], Any] | None:
    """The argparse ``type`` for a scalar field, or None for unsupported kinds."""
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        return _integer(low, high)
    if field.type == FieldDescriptor.TYPE_STRING:
        return str
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return float
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _boolean
    return None


def parse_extra(text: str) -> tuple[str, struct_pb2.Value]:
    """``KEY=JSON`` -> (key, Value); the value must be JSON so types survive."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=JSON, got {text!r}")
    try:
        json.loads(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"value of {key} is not JSON: {raw!r} (quote strings: {key}='\"text\"')"
        ) from None
    value = struct_pb2.Value()
    json_format.Parse(raw, value)
    return key, value
