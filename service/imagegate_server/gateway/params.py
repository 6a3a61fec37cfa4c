"""Proto parameters -> OpenAI request parameters, and back for violation paths.

Field names in the contract equal OpenAI's parameter names, so the mapping is
generic over the message descriptors: a set field is sent under its own name, an
unset one is omitted, an enum is sent as its lowercase value (QUALITY_HIGH ->
``high``). Only the file declarations and ``extra_parameters`` need code of
their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Value

from imagegate_server.errors import FieldViolation, InvalidRequest
from imagegate_server.validation import Violation

# Fields that are not OpenAI parameters of the same name.
NON_PARAMETER_FIELDS = frozenset(
    {"images", "image", "mask", "markup", "image_references", "mask_reference", "extra_parameters"}
)


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


def to_openai(message: Message, path: str = "parameters") -> dict[str, Any]:
    """The OpenAI parameters a parameters message sets (unset fields omitted)."""
    params: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.name in NON_PARAMETER_FIELDS:
            continue
        if field.enum_type is not None:
            text = enum_text(field.enum_type, value)
            if text is None:
                raise InvalidRequest.one(
                    f"{path}.{field.name}", f"{value} is not a value of {field.enum_type.name}"
                )
            params[field.name] = text
        elif field.message_type is not None:
            nested = to_openai(value, f"{path}.{field.name}")
            if nested:
                params[field.name] = nested
        else:
            params[field.name] = value
    return params


def check_extra_parameters(
    params: Mapping[str, Any], extra: Mapping[str, Value], allowlist: frozenset[str]
) -> list[FieldViolation]:
    """Violations of ``extra_parameters``: keys off the allowlist, set twice, or not JSON."""
    violations = []
    for key in sorted(extra):
        path = f"parameters.extra_parameters[{key!r}]"
        if key not in allowlist:
            violations.append(
                FieldViolation(path, "not on this gateway's allowlist of extra parameters")
            )
        elif key in params:
            violations.append(FieldViolation(path, f"'{key}' is also set as a field; set it once"))
        elif _json_value(extra[key]) is _NOT_JSON:
            violations.append(FieldViolation(path, "not representable as JSON (NaN or infinity?)"))
    return violations


def add_extra_parameters(params: dict[str, Any], extra: Mapping[str, Value]) -> None:
    """Add (already checked) extra parameters as their JSON values."""
    for key, value in extra.items():
        params[key] = _json_value(value)


_NOT_JSON = object()


def _json_value(value: Value) -> Any:
    try:
        return json_format.MessageToDict(value)
    except (ValueError, json_format.Error):
        return _NOT_JSON


def to_form(params: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Multipart form fields, encoded as OpenAI's SDKs encode them.

    Booleans are ``true``/``false``; nested objects flatten to ``svg[model]``,
    ``svg[reasoning][effort]``; lists repeat ``key[]``.
    """
    form: dict[str, str | list[str]] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                put(f"{key}[{name}]", inner)
        elif isinstance(value, list):
            form[f"{key}[]"] = [_scalar(item) for item in value]
        else:
            form[key] = _scalar(value)

    for key, value in params.items():
        put(key, value)
    return form


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def violation_path(param: str, renames: Mapping[str, str]) -> str:
    """The proto field path of an OpenAI ``param`` named in a validation violation."""
    head, sep, rest = param.partition(".")
    bracket = head.find("[")
    base = head if bracket < 0 else head[:bracket]
    base = renames.get(base, base)
    index = "" if bracket < 0 else head[bracket:]
    return f"parameters.{base}{index}{sep}{rest}"


def field_violations(
    violations: list[Violation], renames: Mapping[str, str] | None = None
) -> list[FieldViolation]:
    return [
        FieldViolation(violation_path(v.param, renames or {}), v.message, str(v.code))
        for v in violations
    ]
