"""Request bytes that are not the RPC's protobuf message: INVALID_ARGUMENT on every RPC.

gRPC parses request messages before any servicer code runs; these tests send raw
bytes through a channel with identity serializers, as a buggy or hostile client in
any language could.
"""

from __future__ import annotations

import grpc
import pytest
from gateway_support import violations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.emulator import Emulator

SERVICE = "/imagegate.v1.ImagesService/"
# Field 1 (parameters), length 5, but only two bytes follow: truncated.
TRUNCATED = b"\x0a\x05ab"
# A field number 0 tag: never valid protobuf.
ZERO_TAG = b"\x00\x01"
EDIT_PARAMETERS = pb.CreateImageEditRequest(
    parameters=params_pb2.EditParameters(prompt="x", images=[params_pb2.FileInfo()])
).SerializeToString()
UNARY_REQUEST = ["CreateImage", "CreateImageStream"]
STREAMED_REQUESTS = [
    "CreateImageEdit",
    "CreateImageEditStream",
    "CreateImageVariation",
    "CreateImageVariationStream",
]


def _assert_malformed(error: grpc.aio.AioRpcError, field: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field in violations(error)
    details = error.details() or ""
    assert "DecodeError" not in details and "Error parsing" not in details
    assert "class" not in details


async def _call(channel: grpc.aio.Channel, rpc: str, messages: list[bytes]) -> None:
    """Send raw ``messages`` to ``rpc`` and drain its answer."""
    path = SERVICE + rpc
    if rpc == "CreateImage":
        await channel.unary_unary(path)(messages[0])
    elif rpc == "CreateImageStream":
        async for _ in channel.unary_stream(path)(messages[0]):
            pass
    elif rpc.endswith("Stream"):
        async for _ in channel.stream_stream(path)(iter(messages)):
            pass
    else:
        await channel.stream_unary(path)(iter(messages))


@pytest.mark.parametrize("rpc", UNARY_REQUEST + STREAMED_REQUESTS)
@pytest.mark.parametrize("data", [TRUNCATED, ZERO_TAG], ids=["truncated", "zero-tag"])
async def test_a_first_message_that_does_not_parse_is_invalid_argument(
    channel: grpc.aio.Channel, emulator: Emulator, rpc: str, data: bytes
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, rpc, [data])
    _assert_malformed(caught.value, "request" if rpc in UNARY_REQUEST else "message[0]")
    assert emulator.journal.entries == []


@pytest.mark.parametrize("rpc", ["CreateImageEdit", "CreateImageEditStream"])
async def test_a_later_upload_message_that_does_not_parse_is_named(
    channel: grpc.aio.Channel, emulator: Emulator, rpc: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, rpc, [EDIT_PARAMETERS, TRUNCATED])
    _assert_malformed(caught.value, "message[1]")
    assert emulator.journal.entries == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=64), rpc=st.sampled_from(UNARY_REQUEST + STREAMED_REQUESTS))
async def test_arbitrary_bytes_are_never_unknown_or_internal(
    channel: grpc.aio.Channel, data: bytes, rpc: str
) -> None:
    # Most random bytes fail to parse; those that do parse are invalid requests.
    try:
        await _call(channel, rpc, [data])
    except grpc.aio.AioRpcError as error:
        assert error.code() in {
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.NOT_FOUND,
        }, (error.code(), error.details())
