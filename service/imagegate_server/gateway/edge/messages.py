"""A call's request messages as the edge reads them: parsed leniently by ``wire``, so a
message that is not the RPC's protobuf is INVALID_ARGUMENT naming where it was."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import InvalidRequest
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.wire import Malformed

Request = Message | Malformed


def unary_parameters(request: Request) -> Message:
    """The ``parameters`` of a unary request."""
    if isinstance(request, Malformed):
        raise malformed("request")
    parameters: Message = getattr(request, "parameters")  # noqa: B009 (typed per request type)
    return parameters


async def no_chunks() -> AsyncIterator[params_pb2.FileChunk]:
    return
    yield  # an async generator with nothing to give


async def each_parsed(requests: AsyncIterator[Request], call: RpcCall) -> AsyncIterator[Message]:
    """An upload's messages, each counted as received; a malformed one ends the call."""
    position = 0
    async for request in requests:
        call.received()
        if isinstance(request, Malformed):
            raise malformed(f"message[{position}]")
        yield request
        position += 1


def malformed(where: str) -> InvalidRequest:
    return InvalidRequest.one(
        where, "not a valid protobuf message of this RPC's request type", "malformed_message"
    )
