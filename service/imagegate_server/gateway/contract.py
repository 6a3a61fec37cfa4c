"""How the contract names OpenAI's values: enum numbers <-> OpenAI's lowercase strings.

Every enum of the contract is OpenAI's parameter with a type prefix and an
``_UNSPECIFIED`` zero (``QUALITY_HIGH`` is ``high``), so the mapping is generic.
Both directions live here: requests send values, mapping reads the echoed ones.
"""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor


def enum_text(enum: EnumDescriptor, number: int) -> str | None:
    """OpenAI's value for an enum number (``RESPONSE_FORMAT_B64_JSON`` -> ``b64_json``).

    None for a number the contract does not define: proto3 enums are open, so a
    caller (or a newer stub) can send one.
    """
    value = enum.values_by_number.get(number)
    if value is None:
        return None
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower()


def enum_number(enum: EnumDescriptor, text: object) -> int:
    """The enum number for OpenAI's value; 0 (unspecified) for values the contract lacks."""
    if not isinstance(text, str):
        return 0
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    value = enum.values_by_name.get(prefix + text.upper())
    return value.number if value is not None else 0
