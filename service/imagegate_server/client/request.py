"""A parsed command line -> the call to make: parameters, uploads, and how to start it.

The three commands differ only in data: which parameters message they fill, which
streaming RPC they call with which request type, and which of their arguments are
the prompt and files. That data is :data:`OPERATIONS`; :func:`prepare` is the one
builder that turns any of them into a :class:`PreparedCall`, so option handling,
file declaration and the upload stream cannot drift apart between commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message
from imagegate.v1 import images_service_pb2 as svc
from imagegate.v1 import params_pb2

from imagegate_server.client.call import ResponseStream, Starter
from imagegate_server.client.connection import Connection
from imagegate_server.client.options import UsageError, options_for
from imagegate_server.client.upload import (
    StreamingCall,
    Upload,
    UploadTracker,
    declare,
    request_stream,
    upload_then_read,
)

if TYPE_CHECKING:
    from imagegate.v1.images_service_pb2_grpc import ImagesServiceAsyncStub

Parameters = (
    params_pb2.GenerationParameters | params_pb2.EditParameters | params_pb2.VariationParameters
)
# Sets the positional arguments (prompt, input files) on the parameters and
# returns the files to upload, declared in the parameters in upload order.
Inputs = Callable[[argparse.Namespace, Any], list[Upload]]


@dataclass(frozen=True)
class Operation:
    parameters: type[Parameters]
    request: type[Message]
    """The RPC's request: ``parameters`` in the first message, ``chunk`` in later ones."""
    rpc: str
    """The streaming method of ImagesService."""
    inputs: Inputs
    uploads: bool
    """Client-streaming: the request is a stream of messages, even with no files."""


@dataclass(frozen=True)
class PreparedCall:
    parameters: Parameters
    start: Starter
    partial_format: int
    """The requested output format, for naming partial images before the result says."""
    uploads: UploadTracker | None


def _prompt_only(args: argparse.Namespace, params: params_pb2.GenerationParameters) -> list[Upload]:
    params.prompt = args.prompt
    return []


def _edit_inputs(args: argparse.Namespace, params: params_pb2.EditParameters) -> list[Upload]:
    params.prompt = args.prompt
    uploads = [declare(path, params_pb2.FILE_ROLE_IMAGE, i) for i, path in enumerate(args.images)]
    if not uploads and not params.image_references:
        raise UsageError("give at least one IMAGE (or --image-url/--file-id)")
    params.images.extend(u.info for u in uploads)
    if args.mask is not None:
        uploads.append(declare(args.mask, params_pb2.FILE_ROLE_MASK))
        params.mask.CopyFrom(uploads[-1].info)
    if args.markup is not None:
        uploads.append(declare(args.markup, params_pb2.FILE_ROLE_MARKUP))
        params.markup.CopyFrom(uploads[-1].info)
    return uploads


def _variation_input(
    args: argparse.Namespace, params: params_pb2.VariationParameters
) -> list[Upload]:
    upload = declare(args.image, params_pb2.FILE_ROLE_IMAGE, 0)
    params.image.CopyFrom(upload.info)
    return [upload]


OPERATIONS: dict[str, Operation] = {
    "generate": Operation(
        params_pb2.GenerationParameters,
        svc.CreateImageStreamRequest,
        "CreateImageStream",
        _prompt_only,
        uploads=False,
    ),
    "edit": Operation(
        params_pb2.EditParameters,
        svc.CreateImageEditStreamRequest,
        "CreateImageEditStream",
        _edit_inputs,
        uploads=True,
    ),
    "vary": Operation(
        params_pb2.VariationParameters,
        svc.CreateImageVariationStreamRequest,
        "CreateImageVariationStream",
        _variation_input,
        uploads=True,
    ),
}


def prepare(args: argparse.Namespace) -> PreparedCall:
    """Builds the call ``args`` asks for; nothing is sent until ``start`` runs.

    Options are applied before the inputs, since whether an edit needs an IMAGE
    depends on its ``--image-url``/``--file-id`` references. Raises UsageError for
    a command line that cannot make a request, UploadError for an unreadable file.
    """
    operation = OPERATIONS[args.operation]
    params = operation.parameters()
    options_for(params.DESCRIPTOR).apply(args, params)
    uploads = operation.inputs(args, params)
    first = operation.request(parameters=params, request_id=getattr(args, "request_id", ""))
    partial_format = (
        params.output_format
        if isinstance(params, params_pb2.GenerationParameters | params_pb2.EditParameters)
        else params_pb2.OUTPUT_FORMAT_UNSPECIFIED  # variations have no partial images
    )

    def method(stub: ImagesServiceAsyncStub) -> Callable[..., ResponseStream]:
        rpc: Callable[..., ResponseStream] = getattr(stub, operation.rpc)
        return rpc

    if not operation.uploads:

        def start_unary(stub: ImagesServiceAsyncStub, connection: Connection) -> ResponseStream:
            return method(stub)(first, timeout=connection.timeout, metadata=connection.metadata())

        return PreparedCall(params, start_unary, partial_format, None)

    tracker = UploadTracker(total=sum(upload.size for upload in uploads))

    def start_upload(stub: ImagesServiceAsyncStub, connection: Connection) -> ResponseStream:
        # Built per start, since a generator can be consumed only once.
        requests = request_stream(
            first, uploads, lambda chunk: operation.request(chunk=chunk), tracker.add
        )
        rpc: Callable[..., StreamingCall] = getattr(stub, operation.rpc)
        call = rpc(timeout=connection.timeout, metadata=connection.metadata())
        return upload_then_read(call, tracker.wrap(requests))

    return PreparedCall(params, start_upload, partial_format, tracker)
