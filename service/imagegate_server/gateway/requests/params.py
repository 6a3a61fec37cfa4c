"""Proto parameters -> OpenAI's parameter names and values, and back for violation paths.

Field names in the contract equal OpenAI's parameter names, so the mapping is
generic over the message descriptors: a set field is sent under its own name, an
unset one is omitted, an enum is sent as its lowercase value (QUALITY_HIGH ->
``high``). Only the file declarations and ``extra_parameters`` need code of
their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Value

from imagegate_server.errors import FieldViolation, InvalidRequest
from imagegate_server.gateway.contract import enum_text
from imagegate_server.validation import Violation

# Fields that are not OpenAI parameters of the same name (``delivery`` is the
# gateway's own: how results come back, never sent upstream).
NON_PARAMETER_FIELDS = frozenset(
    {
        "images",
        "image",
        "mask",
        "markup",
        "image_references",
        "mask_reference",
        "extra_parameters",
        "delivery",
    }
)


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
