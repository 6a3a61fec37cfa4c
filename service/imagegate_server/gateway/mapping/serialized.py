"""Responses serialized with each image's bytes copied once, into what gRPC sends.

A 10-image answer is tens of MiB. Setting each image into the message and then
serializing it held the decoded images, the message's copy and protobuf's output
buffer together, and gRPC copies the bytes it sends once more; a stream's slices
were copied four times before gRPC's copy (into bytes, into the chunk message, into
the response around it, into its serialization). Here the messages are built without the
images' bytes (their metadata, all small), and the bytes gRPC sends are joined
straight from the images: protobuf's wire format is a sequence of fields in any
order, so each image is its other fields, as protobuf serialized them, followed by
its ``data`` field written here. The result parses to the message the ordinary way
would have made (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from imagegate.v1 import results_pb2

from imagegate_server.gateway.mapping.results import ImageSlice

_LENGTH_DELIMITED = 2
_IMAGES = results_pb2.ImagesResult.DESCRIPTOR.fields_by_name["images"].number
_DATA = results_pb2.GeneratedImage.DESCRIPTOR.fields_by_name["data"].number
_CHUNK_DATA = results_pb2.ImageChunk.DESCRIPTOR.fields_by_name["data"].number


def unary_response_bytes(
    response_type: type[Message],
    result: results_pb2.ImagesResult,
    images: Sequence[bytes | None],
) -> bytes:
    """``response_type(result=result)`` serialized, with ``images[i]`` as the data
    of ``result.images[i]`` (None: the image has a URL instead). ``result`` carries
    no image bytes itself."""
    head = results_pb2.ImagesResult()
    head.CopyFrom(result)
    head.ClearField("images")
    parts: list[bytes] = [head.SerializeToString()]
    for image, data in zip(result.images, images, strict=True):
        body = image.SerializeToString()
        if data is None:
            parts += [_key(_IMAGES), _varint(len(body)), body]
            continue
        data_head = _key(_DATA) + _varint(len(data))
        parts += [_key(_IMAGES), _varint(len(body) + len(data_head) + len(data))]
        parts += [body, data_head, data]
    result_field = response_type.DESCRIPTOR.fields_by_name["result"].number
    size = sum(len(part) for part in parts)
    return b"".join([_key(result_field), _varint(size), *parts])


def chunk_response_bytes(response_type: type[Message], piece: ImageSlice) -> bytes:
    """``response_type(image_chunk=...)`` serialized: the slice's other fields, then
    its bytes (none when it has none, as protobuf leaves an empty field out)."""
    parts: list[bytes | memoryview] = [piece.head.SerializeToString()]
    if len(piece.data):
        parts += [_key(_CHUNK_DATA), _varint(len(piece.data)), piece.data]
    chunk_field = response_type.DESCRIPTOR.fields_by_name["image_chunk"].number
    size = sum(len(part) for part in parts)
    return b"".join([_key(chunk_field), _varint(size), *parts])


def _key(field_number: int) -> bytes:
    return _varint(field_number << 3 | _LENGTH_DELIMITED)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
