"""The command lines of image jobs: ``--detach`` on ``generate | edit | vary``, and

    imagegate jobs list [--state STATE] [--json]
    imagegate jobs get NAME [--json]
    imagegate jobs wait NAME [--wait SECONDS] [-o FILE]
    imagegate jobs cancel NAME
    imagegate jobs result NAME -o FILE

Parsers only (cheap to import for ``--help``); the handlers are in :mod:`.jobs_command`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

JOB_TIMEOUT = 30.0
DEFAULT_WAIT = 600.0


def add_detach(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jobs")
    group.add_argument(
        "--detach",
        action="store_true",
        help="submit as a job (ImageJobsService) and print its operation name at once; "
        "collect it later with `imagegate jobs result NAME -o FILE` (-o is not needed)",
    )
    group.add_argument(
        "--request-id",
        metavar="UUID",
        default="",
        help="idempotency key (a UUID): the same request sent again gets the first "
        "one's result, no second charge",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from imagegate_server.client.parsers import add_connection

    jobs = subparsers.add_parser(
        "jobs",
        help="list, wait for, cancel and collect image jobs (client)",
        description="Your image jobs on the gateway (google.longrunning.Operations).",
    )
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="your jobs, newest first")
    listing.add_argument(
        "--state",
        choices=("queued", "running", "succeeded", "failed", "cancelled"),
        help="only jobs in this state",
    )
    listing.add_argument("--json", action="store_true", help="one JSON operation per line")
    get = actions.add_parser("get", help="one job as it is now")
    get.add_argument("name", metavar="NAME", help="operations/<uuid>")
    get.add_argument("--json", action="store_true", help="the operation as JSON")
    wait = actions.add_parser("wait", help="wait until the job is done (and save its images)")
    wait.add_argument("name", metavar="NAME")
    wait.add_argument(
        "--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
        help="give up after this long (default: %(default)g)",
    )  # fmt: skip
    wait.add_argument("-o", "--output", type=Path, metavar="FILE", help="save its images here")
    cancel = actions.add_parser("cancel", help="cancel the job (best effort)")
    cancel.add_argument("name", metavar="NAME")
    result = actions.add_parser("result", help="save a done job's images")
    result.add_argument("name", metavar="NAME")
    result.add_argument("-o", "--output", type=Path, metavar="FILE", required=True)
    for action in (listing, get, wait, cancel, result):
        add_connection(action, JOB_TIMEOUT, "deadline of each call (default: %(default)g)")
        action.set_defaults(handler=_run, client_parser=action)


def _run(args: argparse.Namespace) -> int:
    from imagegate_server.client.jobs_command import run  # gRPC only now

    return run(args)
