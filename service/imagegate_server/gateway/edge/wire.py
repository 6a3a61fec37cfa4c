"""ImagesService on the wire: its RPCs read off the descriptor, and their registration
with request parsing that cannot fail inside gRPC.

Each RPC's shape comes from its method descriptor: whether the caller uploads
(client streaming: parameters, then file chunks), whether it takes a stream
(server streaming: slices, then the result), its response type, and its operation
(from the parameters message its requests carry). Nothing is written twice.

The generated registration hands request bytes to ``FromString`` inside gRPC,
before any servicer code runs: corrupt bytes then end the call as UNKNOWN (unary,
quoting the parser's exception) or INTERNAL (streams). Here a message that does
not parse becomes :data:`MALFORMED`, which the edge answers with INVALID_ARGUMENT
like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.longrunning import operations_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from imagegate.v1 import admin_pb2, jobs_pb2, params_pb2, quota_pb2, stored_pb2
from imagegate.v1 import images_service_pb2 as pb

from imagegate_server.models import Operation


class Malformed:
    """A request message whose bytes are not the RPC's protobuf message."""

    __slots__ = ()


MALFORMED: Final = Malformed()
SERVICE = pb.DESCRIPTOR.services_by_name["ImagesService"]
QUOTA_SERVICE = quota_pb2.DESCRIPTOR.services_by_name["QuotaService"]
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
STORED_SERVICE = stored_pb2.DESCRIPTOR.services_by_name["StoredImagesService"]
# The generated module of each of our services' files, where its messages are.
_MESSAGES = {
    module.DESCRIPTOR.name: module
    for module in (pb, quota_pb2, admin_pb2, stored_pb2, jobs_pb2, operations_pb2)
}

_OPERATION_OF_PARAMETERS = {
    params_pb2.GenerationParameters.DESCRIPTOR.full_name: Operation.GENERATION,
    params_pb2.EditParameters.DESCRIPTOR.full_name: Operation.EDIT,
    params_pb2.VariationParameters.DESCRIPTOR.full_name: Operation.VARIATION,
}
_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


# The response header of an upload the gateway accepted (params.proto, FileChunk):
# the go-ahead for its file chunks.
UPLOAD_ACCEPTED: Final = "x-imagegate-upload"


@dataclass(frozen=True)
class Rpc:
    """One RPC of ImagesService, as its descriptor describes it."""

    method: MethodDescriptor
    operation: Operation
    response: type[Message]

    @property
    def name(self) -> str:
        return str(self.method.name)

    @property
    def uploads(self) -> bool:
        """The caller streams the parameters, then file chunks."""
        return bool(self.method.client_streaming)

    @property
    def streams(self) -> bool:
        """The answer is a stream of slices, then the result."""
        return bool(self.method.server_streaming)

    @property
    def stream_alternative(self) -> str:
        """The stream RPC of the same operation (for a unary result too large to send)."""
        return next(
            rpc.name
            for rpc in RPCS
            if rpc.streams and rpc.operation is self.operation and rpc.uploads == self.uploads
        )


def _rpc(method: MethodDescriptor) -> Rpc:
    parameters = method.input_type.fields_by_name["parameters"].message_type
    assert parameters is not None  # every request carries a parameters message
    return Rpc(
        method,
        _OPERATION_OF_PARAMETERS[parameters.full_name],
        getattr(pb, method.output_type.name),
    )


RPCS: Final = tuple(_rpc(method) for method in SERVICE.methods)


def lenient_parser(message_type: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def parse(data: bytes) -> Message | Malformed:
        try:
            return message_type.FromString(data)
        except Exception:  # any parser failure means the caller sent bad bytes
            return MALFORMED

    return parse


def add_images_service(
    behaviour: Callable[[Rpc], Callable[..., Any]], server: grpc.aio.Server
) -> None:
    """Register every RPC of ImagesService with ``behaviour(rpc)`` as its handler."""
    add_service(server, SERVICE, {rpc.name: behaviour(rpc) for rpc in RPCS})


def _serialize(response: Message | bytes) -> bytes:
    """A response message, or one its behaviour serialized already (a unary result or
    a stream's image slice, joined from the images' bytes: see ``mapping.serialized``)."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_service(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    behaviours: Mapping[str, Callable[..., Any]],
) -> None:
    """Register ``service``'s methods with their behaviours, parsing leniently."""
    messages = _MESSAGES[service.file.name]
    handlers: dict[str, Any] = {}
    for method in service.methods:
        kind = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
        handlers[method.name] = kind(
            behaviours[method.name],
            request_deserializer=lenient_parser(getattr(messages, method.input_type.name)),
            response_serializer=_serialize,
        )
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]
