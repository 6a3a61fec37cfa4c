"""``imagegate generate | edit | vary``: the client sub-commands.

    imagegate generate PROMPT -o FILE [parameters]
    imagegate edit IMAGE... [--mask MASK | --markup MARKUP] PROMPT -o FILE [parameters]
    imagegate vary IMAGE -o FILE [parameters]

Exit codes: 0 success, 1 the call or a file failed (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import Descriptor
from imagegate.v1 import images_service_pb2 as svc
from imagegate.v1 import params_pb2

from imagegate_server.client.assemble import StreamProtocolError
from imagegate_server.client.call import (
    Connection,
    Receiver,
    ResponseStream,
    Starter,
    UploadTracker,
    run,
    summarize,
)
from imagegate_server.client.errors import PROGRAM, describe_rpc_error, one_line
from imagegate_server.client.fetch import FetchError
from imagegate_server.client.options import ParameterOptions, UsageError, enum_choices
from imagegate_server.client.output import OutputError, OutputPlan
from imagegate_server.client.progress import Progress
from imagegate_server.client.upload import Upload, UploadError, declare, request_stream

if TYPE_CHECKING:
    from imagegate.v1.images_service_pb2_grpc import ImagesServiceAsyncStub

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 300.0

_OPTIONS: dict[str, ParameterOptions] = {}


def _parameter_options(descriptor: Descriptor) -> ParameterOptions:
    if descriptor.full_name not in _OPTIONS:
        _OPTIONS[descriptor.full_name] = ParameterOptions(descriptor)
    return _OPTIONS[descriptor.full_name]


class _IntermixedParser(argparse.ArgumentParser):
    """Lets options sit between positionals, as in ``edit a.png b.png --mask m.png PROMPT``.

    Plain argparse binds positionals in the first run of them it sees (``a.png
    b.png`` would become IMAGE=a.png, PROMPT=b.png); intermixed parsing collects
    all positionals first. The sub-command parser is created by cli.py's
    subparsers, hence the class switch after creation; the guard sends the
    nested calls that intermixed parsing makes back to the plain parser.
    """

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _add_common(parser: argparse.ArgumentParser, *, partials: bool) -> None:
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the image; with n > 1: FILE-1.ext, FILE-2.ext, ...; without "
        "an extension one is added per output format (not needed for URL results)",
    )
    if partials:
        out.add_argument(
            "--save-partials",
            action="store_true",
            help="also write partial images (FILE.partial-1.ext, ...) as they arrive",
        )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    conn = parser.add_argument_group("connection")
    conn.add_argument(
        "--target",
        metavar="HOST:PORT",
        help=f"the gateway (default: $IMAGEGATE_TARGET or {DEFAULT_TARGET})",
    )
    conn.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline of the call (default: %(default)g; high quality takes minutes)",
    )
    conn.add_argument("--token", help="bearer token for the gateway (default: $IMAGEGATE_TOKEN)")
    conn.add_argument("--tls", action="store_true", help="connect with TLS (system CAs)")
    conn.add_argument(
        "--ca-cert", metavar="PEM", type=Path, help="TLS with this CA bundle (implies --tls)"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    generate = subparsers.add_parser(
        "generate",
        help="generate images from a prompt (client)",
        description="Generate images from PROMPT through the gateway (CreateImageStream).",
    )
    generate.add_argument("prompt", metavar="PROMPT")
    _parameter_options(params_pb2.GenerationParameters.DESCRIPTOR).add_to(generate)
    _add_common(generate, partials=True)
    generate.set_defaults(handler=_generate, client_parser=generate)

    edit = subparsers.add_parser(
        "edit",
        help="edit or extend images (client)",
        description="Edit IMAGE... as PROMPT says (CreateImageEditStream). Input images "
        "are uploaded, or referenced with --image-url/--file-id instead.",
    )
    edit.__class__ = _IntermixedParser
    edit.add_argument("images", metavar="IMAGE", nargs="*", help="input image files")
    edit.add_argument("prompt", metavar="PROMPT")
    edit.add_argument("--mask", metavar="MASK", type=Path, help="mask PNG to upload")
    edit.add_argument("--markup", metavar="FILE", type=Path, help="markup PNG to upload")
    _parameter_options(params_pb2.EditParameters.DESCRIPTOR).add_to(edit)
    _add_common(edit, partials=True)
    edit.set_defaults(handler=_edit, client_parser=edit)

    vary = subparsers.add_parser(
        "vary",
        help="create variations of an image (client)",
        description="Create variations of IMAGE (CreateImageVariationStream).",
    )
    vary.add_argument("image", metavar="IMAGE", type=Path)
    _parameter_options(params_pb2.VariationParameters.DESCRIPTOR).add_to(vary)
    _add_common(vary, partials=False)
    vary.set_defaults(handler=_vary, client_parser=vary)


@dataclass
class _Job:
    start: Starter
    partial_format: int = params_pb2.OUTPUT_FORMAT_UNSPECIFIED
    uploads: UploadTracker | None = None


def _uploading(uploads: list[Upload]) -> UploadTracker:
    return UploadTracker(total=sum(u.size for u in uploads))


def build_generate(args: argparse.Namespace) -> tuple[params_pb2.GenerationParameters, _Job]:
    params = params_pb2.GenerationParameters(prompt=args.prompt)
    _parameter_options(params.DESCRIPTOR).apply(args, params)
    request = svc.CreateImageStreamRequest(parameters=params)

    def start(stub: ImagesServiceAsyncStub, connection: Connection) -> ResponseStream:
        return stub.CreateImageStream(
            request, timeout=connection.timeout, metadata=connection.metadata()
        )

    return params, _Job(start, params.output_format)


def build_edit(args: argparse.Namespace) -> tuple[params_pb2.EditParameters, _Job]:
    params = params_pb2.EditParameters(prompt=args.prompt)
    _parameter_options(params.DESCRIPTOR).apply(args, params)
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
    tracker = _uploading(uploads)

    def start(stub: ImagesServiceAsyncStub, connection: Connection) -> ResponseStream:
        requests = request_stream(
            svc.CreateImageEditStreamRequest(parameters=params),
            uploads,
            lambda chunk: svc.CreateImageEditStreamRequest(chunk=chunk),
            tracker.add,
        )
        return stub.CreateImageEditStream(
            tracker.wrap(requests), timeout=connection.timeout, metadata=connection.metadata()
        )

    return params, _Job(start, params.output_format, tracker)


def build_vary(args: argparse.Namespace) -> tuple[params_pb2.VariationParameters, _Job]:
    params = params_pb2.VariationParameters()
    _parameter_options(params.DESCRIPTOR).apply(args, params)
    upload = declare(args.image, params_pb2.FILE_ROLE_IMAGE, 0)
    params.image.CopyFrom(upload.info)
    tracker = _uploading([upload])

    def start(stub: ImagesServiceAsyncStub, connection: Connection) -> ResponseStream:
        requests = request_stream(
            svc.CreateImageVariationStreamRequest(parameters=params),
            [upload],
            lambda chunk: svc.CreateImageVariationStreamRequest(chunk=chunk),
            tracker.add,
        )
        return stub.CreateImageVariationStream(
            tracker.wrap(requests), timeout=connection.timeout, metadata=connection.metadata()
        )

    return params, _Job(start, uploads=tracker)


def _generate(args: argparse.Namespace) -> int:
    return _main(args, build_generate)


def _edit(args: argparse.Namespace) -> int:
    return _main(args, build_edit)


def _vary(args: argparse.Namespace) -> int:
    return _main(args, build_vary)


def _fail(message: str) -> int:
    # One line whatever the message carries: scripts and logs read errors line-wise.
    sys.stderr.write(f"{one_line(message)}\n")
    return 1


def _connection(args: argparse.Namespace) -> Connection:
    ca_cert = None
    if args.ca_cert is not None:
        try:
            ca_cert = args.ca_cert.read_bytes()
        except OSError as error:
            raise UploadError(f"cannot read {args.ca_cert}: {error.strerror}") from None
    return Connection(
        target=args.target or os.environ.get("IMAGEGATE_TARGET") or DEFAULT_TARGET,
        timeout=args.timeout,
        token=args.token or os.environ.get("IMAGEGATE_TOKEN") or None,
        tls=args.tls,
        ca_cert=ca_cert,
    )


def _main(args: argparse.Namespace, build: Any) -> int:
    parser: argparse.ArgumentParser = args.client_parser
    wants_url = getattr(args, "param__response_format", None) == _url_choice()
    if args.output is None and not wants_url:
        parser.error("the following arguments are required: -o/--output")
    try:
        _, job = build(args)
        connection = _connection(args)
    except UsageError as error:
        parser.error(str(error))
    except UploadError as error:
        return _fail(f"{PROGRAM}: {error}")
    progress = Progress(sys.stderr, enabled=not args.quiet)
    receiver = Receiver(
        progress=progress,
        plan=OutputPlan(Path(args.output)) if args.output is not None else None,
        save_partials=getattr(args, "save_partials", False),
        partial_format=job.partial_format,
        uploads=job.uploads,
    )
    try:
        saved = asyncio.run(_run(connection, job, receiver))
    except grpc.aio.AioRpcError as error:
        if job.uploads is not None and job.uploads.error is not None:
            return _fail(f"{PROGRAM}: {job.uploads.error}")
        return _fail(
            describe_rpc_error(
                error,
                target=connection.target,
                timeout=connection.timeout,
                token_given=connection.token is not None,
            )
        )
    except StreamProtocolError as error:
        return _fail(f"{PROGRAM}: bad answer from {connection.target}: {error}")
    except (OutputError, UploadError, FetchError) as error:
        return _fail(f"{PROGRAM}: {error}")
    except Exception as error:  # a bug of ours: still one line, never a traceback
        return _fail(f"{PROGRAM}: unexpected error: {type(error).__name__}: {error}")
    assert receiver.result is not None  # finish() checked it
    summarize(saved, receiver.result, progress)
    return 0


async def _run(connection: Connection, job: _Job, receiver: Receiver) -> list[Any]:
    try:
        return await run(connection, job.start, receiver)
    except asyncio.CancelledError:
        # gRPC cancels the call when the request iterator raises: surface the cause.
        if job.uploads is not None and job.uploads.error is not None:
            raise job.uploads.error from None
        raise


def _url_choice() -> str:
    numbers = enum_choices(params_pb2.ResponseFormat.DESCRIPTOR)
    return next(
        name for name, number in numbers.items() if number == params_pb2.RESPONSE_FORMAT_URL
    )
