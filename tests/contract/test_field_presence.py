"""Field presence survives the wire, so "unset" reaches OpenAI as "omitted".

The gateway omits a parameter upstream exactly when its field is unset; a zero
value that the caller set (output_compression=0, partial_images=0, user="") must
stay distinguishable from unset after a serialize/parse round trip.
"""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from imagegate.v1 import images_service_pb2, params_pb2, results_pb2

PARAMETER_MESSAGES = [
    params_pb2.GenerationParameters,
    params_pb2.EditParameters,
    params_pb2.VariationParameters,
]
# Required by OpenAI, so never "unset": plain proto3 fields are right for them.
REQUIRED = {"prompt", "image", "images"}


def _round_trip(message: Message) -> Message:
    return type(message).FromString(message.SerializeToString())


@pytest.mark.parametrize("message_type", PARAMETER_MESSAGES, ids=lambda m: m.__name__)
def test_every_optional_parameter_can_be_told_apart_from_unset(message_type: type[Message]) -> None:
    descriptor: Descriptor = message_type.DESCRIPTOR
    for field in descriptor.fields:
        if field.name in REQUIRED or field.is_repeated:
            continue
        if field.enum_type is not None:
            # Enums are plain fields whose zero value means unset.
            assert field.enum_type.values_by_number[0].name.endswith("_UNSPECIFIED"), (
                field.full_name
            )
        else:
            assert field.has_presence, f"{field.full_name} needs `optional` (explicit presence)"


@pytest.mark.parametrize("message_type", PARAMETER_MESSAGES, ids=lambda m: m.__name__)
def test_unset_fields_stay_unset_after_a_round_trip(message_type: type[Message]) -> None:
    parsed = _round_trip(message_type())
    for field in message_type.DESCRIPTOR.fields:
        if field.has_presence:
            assert not parsed.HasField(field.name), field.full_name


def test_zero_values_set_by_the_caller_keep_their_presence() -> None:
    sent = params_pb2.GenerationParameters(
        prompt="p", output_compression=0, partial_images=0, user="", n=1, size="auto"
    )
    got = _round_trip(sent)
    assert isinstance(got, params_pb2.GenerationParameters)
    for name in ("output_compression", "partial_images", "user", "n", "size"):
        assert got.HasField(name), name
    assert got.output_compression == 0
    assert not got.HasField("model")
    assert got.style == params_pb2.STYLE_UNSPECIFIED


def test_every_enum_starts_with_unspecified() -> None:
    for module in (params_pb2, results_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            assert zero == f"{_screaming(enum.name)}_UNSPECIFIED", enum.full_name


def _screaming(camel: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(camel)).upper()


def test_edit_upload_stream_messages_round_trip() -> None:
    first = images_service_pb2.CreateImageEditRequest(
        parameters=params_pb2.EditParameters(
            prompt="add a hat",
            images=[params_pb2.FileInfo(filename="a.png", content_type="image/png", size_bytes=3)],
            mask=params_pb2.FileInfo(filename="m.png"),
            input_fidelity=params_pb2.INPUT_FIDELITY_HIGH,
        )
    )
    chunk = images_service_pb2.CreateImageEditRequest(
        chunk=params_pb2.FileChunk(role=params_pb2.FILE_ROLE_MASK, data=b"\x89PN")
    )
    got_first = _round_trip(first)
    got_chunk = _round_trip(chunk)
    assert isinstance(got_first, images_service_pb2.CreateImageEditRequest)
    assert isinstance(got_chunk, images_service_pb2.CreateImageEditRequest)
    assert got_first.WhichOneof("payload") == "parameters"
    assert got_first.parameters.HasField("mask") and not got_first.parameters.HasField("markup")
    assert got_first.parameters.images[0].size_bytes == 3
    assert got_chunk.WhichOneof("payload") == "chunk"
    assert got_chunk.chunk.role == params_pb2.FILE_ROLE_MASK
    assert got_chunk.chunk.data == b"\x89PN"


def test_declared_size_is_optional() -> None:
    got = _round_trip(params_pb2.FileInfo(filename="a.png"))
    assert isinstance(got, params_pb2.FileInfo)
    assert not got.HasField("size_bytes")
    got = _round_trip(params_pb2.FileInfo(size_bytes=0))
    assert isinstance(got, params_pb2.FileInfo)
    assert got.HasField("size_bytes")


def test_extra_parameters_carry_json_values() -> None:
    sent = params_pb2.GenerationParameters(prompt="p")
    sent.extra_parameters["prompt_rewriter"].CopyFrom(struct_pb2.Value(string_value="off"))
    sent.extra_parameters["seed"].CopyFrom(struct_pb2.Value(number_value=7))
    got = _round_trip(sent)
    assert isinstance(got, params_pb2.GenerationParameters)
    assert got.extra_parameters["prompt_rewriter"].string_value == "off"
    assert got.extra_parameters["seed"].number_value == 7


def test_result_images_carry_raw_bytes_or_a_url() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    result = results_pb2.ImagesResult(
        created=1,
        images=[
            results_pb2.GeneratedImage(data=png),
            results_pb2.GeneratedImage(url="https://x/y.png"),
        ],
        usage=results_pb2.ImageUsage(input_tokens=5, output_tokens=7, total_tokens=12),
    )
    got = _round_trip(result)
    assert isinstance(got, results_pb2.ImagesResult)
    assert got.images[0].WhichOneof("content") == "data" and got.images[0].data == png
    assert got.images[1].WhichOneof("content") == "url"
    assert not got.images[0].HasField("revised_prompt")
    assert not got.usage.HasField("output_tokens_details")
    assert not got.HasField("size")
