"""A call's request messages as the edge reads them: parsed leniently by ``wire``, so a
message that is not the RPC's protobuf is INVALID_ARGUMENT naming where it was; an
upload's messages under the edge's time bounds, and its files received after the
go-ahead (the image RPCs' and the job submits' alike)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import ImagegateError, InvalidRequest
from imagegate_server.gateway.edge.guard import Context
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.wire import UPLOAD_ACCEPTED, Malformed
from imagegate_server.gateway.requests.draft import Draft, PreparedRequest
from imagegate_server.gateway.requests.stream import UploadStream
from imagegate_server.settings import Settings

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


def upload_stream(
    requests: AsyncIterator[Request],
    call: RpcCall,
    settings: Settings,
    on_closed: Callable[[str], None],
) -> UploadStream:
    """An upload's messages, its first in time and none stalled (``on_closed``: why it
    ended early, for the metrics)."""
    return UploadStream(
        each_parsed(requests, call),
        first_message_s=settings.first_message_timeout_s,
        idle_s=settings.upload_idle_timeout_s,
        on_closed=on_closed,
    )


async def receive_files(
    context: Context, stream: UploadStream, draft: Draft, read_s: float
) -> PreparedRequest:
    """The upload's files received and judged, once the caller has the go-ahead."""
    # "Parameters, credentials and limits accepted: send the files." A client that
    # waits for these headers sends no upload bytes into a refusal, and reads the
    # refusal while it writes nothing (grpc's asyncio client misreports a status
    # that arrives during its writes: grpc/grpc#36066). The header tells these
    # headers from a refusal's trailers-only answer.
    await context.send_initial_metadata(((UPLOAD_ACCEPTED, "accepted"),))
    try:
        return await draft.finish(stream.chunks())
    except ImagegateError:
        # Refused mid-upload: answer once the caller has sent what it declared (at
        # most ``read_s``).
        await stream.discard(draft.owed_bytes, read_s)
        raise


def malformed(where: str) -> InvalidRequest:
    return InvalidRequest.one(
        where, "not a valid protobuf message of this RPC's request type", "malformed_message"
    )
