"""Registering ImagesService with request parsing that cannot fail inside gRPC.

The generated registration hands request bytes to ``FromString`` inside gRPC,
before any servicer code runs: corrupt bytes then end the call as UNKNOWN (unary,
quoting the parser's exception) or INTERNAL (streams). Here a message that does
not parse becomes :data:`MALFORMED`, which the servicer answers with
INVALID_ARGUMENT like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import grpc
from google.protobuf.message import Message
from imagegate.v1 import images_service_pb2 as pb


class Malformed:
    """A request message whose bytes are not the RPC's protobuf message."""

    __slots__ = ()


MALFORMED: Final = Malformed()
SERVICE = pb.DESCRIPTOR.services_by_name["ImagesService"]

_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def lenient_parser(message_type: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def parse(data: bytes) -> Message | Malformed:
        try:
            return message_type.FromString(data)
        except Exception:  # any parser failure means the caller sent bad bytes
            return MALFORMED

    return parse


def add_images_service(servicer: object, server: grpc.aio.Server) -> None:
    """Like the generated ``add_ImagesServiceServicer_to_server``, with lenient parsing."""
    handlers: dict[str, Any] = {}
    for method in SERVICE.methods:
        kind = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=lenient_parser(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
    generic = grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)  # type: ignore[attr-defined]
