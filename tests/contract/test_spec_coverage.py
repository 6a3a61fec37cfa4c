"""The contract covers every request parameter OpenAI documents.

A newer spec (or a newer ``openai`` package) that adds a parameter turns these tests
red instead of leaving a silent gap in the contract.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor
from imagegate.v1 import images_service_pb2, params_pb2
from openai.types import (
    image_create_variation_params,
    image_edit_params,
    image_generate_params,
)

# Request schemas of the three operations -> the parameters message that mirrors them.
SCHEMA_TO_MESSAGE: dict[str, Descriptor] = {
    "CreateImageRequest": params_pb2.GenerationParameters.DESCRIPTOR,
    "CreateImageEditRequest": params_pb2.EditParameters.DESCRIPTOR,  # multipart body
    "EditImageBodyJsonParam": params_pb2.EditParameters.DESCRIPTOR,  # JSON body
    "CreateImageVariationRequest": params_pb2.VariationParameters.DESCRIPTOR,
}

# Parameters whose proto field has another name, and why.
RENAMED: dict[tuple[str, str], str] = {
    # Multipart `image` (one file) or `image[]` (several): declared uploads.
    ("CreateImageEditRequest", "image"): "images",
    # The JSON edit body references images (URL or file id) instead of uploading.
    ("EditImageBodyJsonParam", "images"): "image_references",
    ("EditImageBodyJsonParam", "mask"): "mask_reference",
}

# `stream` is chosen by the RPC, not by a field: each streaming-capable operation
# has a server-streaming RPC that relays partial images.
STREAM_RPC = {
    "CreateImageRequest": "CreateImageStream",
    "CreateImageEditRequest": "CreateImageEditStream",
    "EditImageBodyJsonParam": "CreateImageEditStream",
}


def _request_schema(spec: dict[str, Any], operation_path: str, media_type: str) -> str:
    body = spec["paths"][operation_path]["post"]["requestBody"]["content"][media_type]
    ref: str = body["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_the_mapped_schemas_are_the_operations_request_bodies(openai_spec: dict[str, Any]) -> None:
    bodies = {
        _request_schema(openai_spec, "/images/generations", "application/json"),
        _request_schema(openai_spec, "/images/edits", "multipart/form-data"),
        _request_schema(openai_spec, "/images/edits", "application/json"),
        _request_schema(openai_spec, "/images/variations", "multipart/form-data"),
    }
    assert bodies == set(SCHEMA_TO_MESSAGE)


def _missing_fields(schema_name: str, properties: dict[str, Any]) -> list[str]:
    message = SCHEMA_TO_MESSAGE[schema_name]
    methods = images_service_pb2.DESCRIPTOR.services_by_name["ImagesService"].methods_by_name
    missing = []
    for name in properties:
        if name == "stream":
            if STREAM_RPC.get(schema_name) not in methods:
                missing.append(name)
        elif RENAMED.get((schema_name, name), name) not in message.fields_by_name:
            missing.append(name)
    return missing


@pytest.mark.parametrize("schema_name", sorted(SCHEMA_TO_MESSAGE))
def test_every_spec_request_property_has_a_field(
    openai_spec: dict[str, Any], schema_name: str
) -> None:
    properties = openai_spec["components"]["schemas"][schema_name]["properties"]
    missing = _missing_fields(schema_name, properties)
    assert not missing, f"{schema_name} properties with no field in the contract: {missing}"


def test_a_parameter_newer_than_the_contract_is_reported() -> None:
    # Guards the coverage test against passing vacuously.
    newer = {"prompt": {}, "stream": {}, "a_parameter_openai_adds_later": {}}
    assert _missing_fields("CreateImageRequest", newer) == ["a_parameter_openai_adds_later"]
    assert _missing_fields("CreateImageVariationRequest", {"stream": {}}) == ["stream"]


def _spec_enum_values(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """Every string enum value reachable through anyOf/$ref from a property schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _spec_enum_values(spec, spec["components"]["schemas"][name])
    values = {v for v in schema.get("enum", []) if isinstance(v, str)}
    for alternative in schema.get("anyOf", []):
        values |= _spec_enum_values(spec, alternative)
    return values


def _proto_enum_values(enum: EnumDescriptor) -> set[str]:
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    return {v.name.removeprefix(prefix).lower() for v in enum.values[1:]}


def _enum_fields(message: Descriptor) -> dict[str, EnumDescriptor]:
    return {f.name: f.enum_type for f in message.fields if f.enum_type is not None}


@pytest.mark.parametrize("schema_name", sorted(SCHEMA_TO_MESSAGE))
def test_every_spec_enum_value_has_an_enum_value(
    openai_spec: dict[str, Any], schema_name: str
) -> None:
    message = SCHEMA_TO_MESSAGE[schema_name]
    properties = openai_spec["components"]["schemas"][schema_name]["properties"]
    for field_name, enum in _enum_fields(message).items():
        if field_name not in properties:
            continue
        missing = _spec_enum_values(openai_spec, properties[field_name]) - _proto_enum_values(enum)
        assert not missing, f"{schema_name}.{field_name}: no {enum.name} value for {missing}"


# The openai package (pinned) is newer than the stored spec: its request types
# name parameters the spec does not have yet.
SDK_PARAMS: dict[str, tuple[type, Descriptor]] = {
    "generate": (
        image_generate_params.ImageGenerateParamsBase,
        params_pb2.GenerationParameters.DESCRIPTOR,
    ),
    "edit": (image_edit_params.ImageEditParamsBase, params_pb2.EditParameters.DESCRIPTOR),
    "variation": (
        image_create_variation_params.ImageCreateVariationParams,
        params_pb2.VariationParameters.DESCRIPTOR,
    ),
}
SDK_RENAMED = {("edit", "image"): "images"}


@pytest.mark.parametrize("operation", sorted(SDK_PARAMS))
def test_every_openai_package_parameter_has_a_field(operation: str) -> None:
    params, message = SDK_PARAMS[operation]
    missing = [
        name
        for name in typing.get_type_hints(params)
        if name != "stream"
        and SDK_RENAMED.get((operation, name), name) not in message.fields_by_name
    ]
    assert not missing, (
        f"openai {operation} parameters with no field in {message.full_name}: {missing}"
    )


def _literal_values(annotation: Any) -> set[str]:
    values: set[str] = set()
    for arg in typing.get_args(annotation):
        if isinstance(arg, str):
            values.add(arg)
        else:
            values |= _literal_values(arg)
    return values


@pytest.mark.parametrize("operation", sorted(SDK_PARAMS))
def test_every_openai_package_literal_has_an_enum_value(operation: str) -> None:
    params, message = SDK_PARAMS[operation]
    hints = typing.get_type_hints(params)
    for field_name, enum in _enum_fields(message).items():
        if field_name not in hints:
            continue
        missing = _literal_values(hints[field_name]) - _proto_enum_values(enum)
        assert not missing, f"openai {operation}.{field_name}: no {enum.name} value for {missing}"


def test_svg_reasoning_efforts_cover_the_openai_package() -> None:
    efforts = _literal_values(typing.get_type_hints(image_generate_params.SvgReasoning)["effort"])
    assert efforts <= _proto_enum_values(params_pb2.SvgReasoningEffort.DESCRIPTOR)
