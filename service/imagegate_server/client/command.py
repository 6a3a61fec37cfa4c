"""Running ``imagegate generate | edit | vary``: one call, and its exit code.

Exit codes: 0 success, 1 the call or a file failed (one line on stderr), 2 usage.
Whatever fails, the user gets one line and never a traceback, and the bearer token
never appears in it, even when a server or proxy quotes it back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc
from imagegate.v1 import params_pb2

from imagegate_server.client import call
from imagegate_server.client.assemble import StreamProtocolError
from imagegate_server.client.call import Receiver, SavedImage, summarize
from imagegate_server.client.connection import Connection, CredentialsError, connection_from
from imagegate_server.client.errors import PROGRAM, one_line
from imagegate_server.client.fetch import FetchError
from imagegate_server.client.option_values import enum_choices
from imagegate_server.client.options import UsageError
from imagegate_server.client.output import OutputError, OutputPlan
from imagegate_server.client.progress import Progress
from imagegate_server.client.request import PreparedCall, prepare
from imagegate_server.client.upload import UploadError

REDACTED = "[token]"


def run(args: argparse.Namespace) -> int:
    """The handler of the three client commands (set by :mod:`.parsers`)."""
    parser: argparse.ArgumentParser = args.client_parser
    wants_url = getattr(args, "param__response_format", None) == _url_choice()
    wants_links = getattr(args, "param__delivery", None) == "stored"
    if args.output is None and not (wants_url or wants_links):
        parser.error("the following arguments are required: -o/--output")
    try:
        prepared = prepare(args)
        connection = connection_from(args)
    except UsageError as error:
        parser.error(str(error))
    except (UploadError, CredentialsError) as error:
        return fail(f"{PROGRAM}: {error}")
    progress = Progress(sys.stderr, enabled=not args.quiet)
    receiver = Receiver(
        progress=progress,
        plan=OutputPlan(Path(args.output)) if args.output is not None else None,
        save_partials=getattr(args, "save_partials", False),
        partial_format=prepared.partial_format,
        uploads=prepared.uploads,
    )
    try:
        saved = asyncio.run(_call(connection, prepared, receiver))
    except grpc.aio.AioRpcError as error:
        if prepared.uploads is not None and prepared.uploads.error is not None:
            return fail(f"{PROGRAM}: {prepared.uploads.error}")
        return fail(connection.describe_failure(error), connection.token)
    except StreamProtocolError as error:
        return fail(f"{PROGRAM}: bad answer from {connection.target}: {error}", connection.token)
    except (OutputError, UploadError, FetchError) as error:
        return fail(f"{PROGRAM}: {error}", connection.token)
    except Exception as error:  # a bug of ours: still one line, never a traceback
        return fail(
            f"{PROGRAM}: unexpected error: {type(error).__name__}: {error}", connection.token
        )
    assert receiver.result is not None  # finish() checked it
    summarize(saved, receiver.result, progress)
    return 0


def fail(message: str, token: str | None = None) -> int:
    # One line whatever the message carries: scripts and logs read errors line-wise.
    line = one_line(message)
    if token:
        # The CLI never puts the token into a message itself, but a server's text
        # (or an exception's) might quote the authorization header back.
        line = line.replace(token, REDACTED)
    sys.stderr.write(f"{line}\n")
    return 1


async def _call(
    connection: Connection, prepared: PreparedCall, receiver: Receiver
) -> list[SavedImage]:
    try:
        return await call.run(connection, prepared.start, receiver)
    except asyncio.CancelledError:
        # gRPC cancels the call when the request iterator raises: surface the cause.
        if prepared.uploads is not None and prepared.uploads.error is not None:
            raise prepared.uploads.error from None
        raise


def _url_choice() -> str:
    numbers = enum_choices(params_pb2.ResponseFormat.DESCRIPTOR)
    return next(
        name for name, number in numbers.items() if number == params_pb2.RESPONSE_FORMAT_URL
    )
