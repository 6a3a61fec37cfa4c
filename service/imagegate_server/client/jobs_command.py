"""Running ``imagegate jobs ...`` and ``generate | edit | vary --detach``.

Exit codes as the other client commands: 0 done, 1 the call or the job failed (one
line on stderr, the token never in it), 2 usage; ``jobs wait`` exits 3 when the job
is still running when it gives up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import grpc
from google.longrunning import operations_pb2
from google.protobuf import json_format
from imagegate.v1 import jobs_pb2, params_pb2

from imagegate_server.client.command import fail
from imagegate_server.client.connection import Connection, CredentialsError, connection_from
from imagegate_server.client.errors import PROGRAM
from imagegate_server.client.fetch import FetchError
from imagegate_server.client.jobs import JobFailed, JobsClient, collect, metadata_of, result_of
from imagegate_server.client.options import UsageError, options_for
from imagegate_server.client.output import OutputError
from imagegate_server.client.request import OPERATIONS
from imagegate_server.client.upload import UploadError
from imagegate_server.pricing.money import format_usd

STILL_RUNNING = 3
_STATES = {value: name.removeprefix("JOB_STATE_").lower()
           for name, value in jobs_pb2.JobState.items()}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.client_parser
    try:
        connection = connection_from(args)
        if getattr(args, "detach", False):
            work = _submit(args, connection)
        else:
            work = _ACTIONS[args.action](args, connection)
    except UsageError as error:
        parser.error(str(error))
    except (UploadError, CredentialsError) as error:
        return fail(f"{PROGRAM}: {error}")
    try:
        return asyncio.run(work)
    except grpc.aio.AioRpcError as error:
        return fail(connection.describe_failure(error), connection.token)
    except JobFailed as error:
        return fail(f"{PROGRAM}: job {error}", connection.token)
    except (OutputError, UploadError, FetchError) as error:
        return fail(f"{PROGRAM}: {error}", connection.token)


async def _submit(args: argparse.Namespace, connection: Connection) -> int:
    operation = OPERATIONS[args.operation]
    params = operation.parameters()
    options_for(params.DESCRIPTOR).apply(args, params)
    uploads = operation.inputs(args, params)
    async with connection.channel() as channel:
        jobs = JobsClient(channel, connection.metadata())
        if isinstance(params, params_pb2.GenerationParameters):
            submitted = await jobs.submit_generation(
                params, request_id=args.request_id, timeout_s=connection.timeout
            )
        else:
            submitted = await jobs.submit_upload(
                params, uploads, request_id=args.request_id, timeout_s=connection.timeout
            )
    print(submitted.name)
    return 0


async def _list(args: argparse.Namespace, connection: Connection) -> int:
    filter_text = f"state = {args.state.upper()}" if args.state else ""
    async with connection.channel() as channel:
        async for operation in JobsClient(channel, connection.metadata()).list(filter_text):
            print(_json(operation) if args.json else _line(operation))
    return 0


async def _get(args: argparse.Namespace, connection: Connection) -> int:
    async with connection.channel() as channel:
        operation = await JobsClient(channel, connection.metadata()).get(args.name)
    print(_json(operation) if args.json else _line(operation))
    return 0


async def _wait(args: argparse.Namespace, connection: Connection) -> int:
    async with connection.channel() as channel:
        operation = await JobsClient(channel, connection.metadata()).wait(args.name, args.wait)
    print(_line(operation))
    if not operation.done:
        return STILL_RUNNING
    if args.output is not None:
        return await _save(operation, args.output)
    result_of(operation)  # a failed job fails the command
    return 0


async def _cancel(args: argparse.Namespace, connection: Connection) -> int:
    async with connection.channel() as channel:
        await JobsClient(channel, connection.metadata()).cancel(args.name)
    return 0


async def _result(args: argparse.Namespace, connection: Connection) -> int:
    async with connection.channel() as channel:
        operation = await JobsClient(channel, connection.metadata()).get(args.name)
    if not operation.done:
        return fail(f"{PROGRAM}: {args.name} is {_state(operation)}, not done yet")
    return await _save(operation, args.output)


async def _save(operation: operations_pb2.Operation, output: Path) -> int:
    for path in await collect(result_of(operation), output):
        sys.stderr.write(f"wrote {path}\n")
    return 0


def _state(operation: operations_pb2.Operation) -> str:
    return _STATES.get(metadata_of(operation).state, "unknown")


def _line(operation: operations_pb2.Operation) -> str:
    meta = metadata_of(operation)
    parts = [operation.name, _state(operation), meta.model, f"n={meta.n}"]
    if meta.HasField("cost_usd_micros"):
        parts.append(format_usd(meta.cost_usd_micros))
    if operation.HasField("error"):
        parts.append(operation.error.message)
    return "  ".join(parts)


def _json(operation: operations_pb2.Operation) -> str:
    body = json_format.MessageToDict(operation, preserving_proto_field_name=True)
    body["metadata"] = json_format.MessageToDict(
        metadata_of(operation), preserving_proto_field_name=True
    )
    body.pop("response", None)  # images (links or bytes): `jobs result` saves them

    return json.dumps(body)


_ACTIONS = {
    "list": _list,
    "get": _get,
    "wait": _wait,
    "cancel": _cancel,
    "result": _result,
}
