"""The command lines of ``imagegate generate | edit | vary``.

    imagegate generate PROMPT -o FILE [parameters] [connection]
    imagegate edit IMAGE... [--mask MASK | --markup MARKUP] PROMPT -o FILE [parameters]
    imagegate vary IMAGE -o FILE [parameters]
    imagegate quota [--json] [connection]
    imagegate upstreams [--json] [connection]

Only the parsers live here. cli.py imports this module to build ``imagegate --help``,
so it needs nothing heavier than the parameter descriptors; gRPC and the rest of
the client load in the handler, once a command really runs (:mod:`.command`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagegate.v1 import params_pb2

from imagegate_server.client.jobs_parsers import add_detach
from imagegate_server.client.options import options_for

DEFAULT_PORT = 50051
"""Where ``imagegate serve`` listens unless told otherwise (Settings.port)."""
DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_TIMEOUT = 300.0
QUOTA_TIMEOUT = 30.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    generate = subparsers.add_parser(
        "generate",
        help="generate images from a prompt (client)",
        description="Generate images from PROMPT through the gateway (CreateImageStream).",
    )
    generate.add_argument("prompt", metavar="PROMPT")
    options_for(params_pb2.GenerationParameters.DESCRIPTOR).add_to(generate)
    _add_output_and_connection(generate, partials=True)
    add_detach(generate)
    generate.set_defaults(handler=_run, operation="generate", client_parser=generate)

    edit = subparsers.add_parser(
        "edit",
        # Options between the images and the prompt, as in the usage line above.
        intermixed=True,
        help="edit or extend images (client)",
        description="Edit IMAGE... as PROMPT says (CreateImageEditStream). Input images "
        "are uploaded, or referenced with --image-url/--file-id instead.",
    )
    edit.add_argument("images", metavar="IMAGE", nargs="*", help="input image files")
    edit.add_argument("prompt", metavar="PROMPT")
    edit.add_argument(
        "--mask",
        metavar="MASK",
        type=Path,
        # OpenAI's rule (CreateImageEditRequest.mask): transparent means "change this".
        help="PNG, the size of the first IMAGE, whose fully transparent pixels (alpha 0) "
        "mark the areas to change (GPT image models take it as guidance)",
    )
    edit.add_argument(
        "--markup",
        metavar="FILE",
        type=Path,
        help="transparent PNG overlay, the size of the first IMAGE, that guides where "
        "the edit applies (2.5 and later GPT image models; instead of --mask)",
    )
    options_for(params_pb2.EditParameters.DESCRIPTOR).add_to(edit)
    _add_output_and_connection(edit, partials=True)
    add_detach(edit)
    edit.set_defaults(handler=_run, operation="edit", client_parser=edit)

    vary = subparsers.add_parser(
        "vary",
        help="create variations of an image (client)",
        description="Create variations of IMAGE (CreateImageVariationStream).",
    )
    vary.add_argument("image", metavar="IMAGE", type=Path)
    options_for(params_pb2.VariationParameters.DESCRIPTOR).add_to(vary)
    _add_output_and_connection(vary, partials=False)
    add_detach(vary)
    vary.set_defaults(handler=_run, operation="vary", client_parser=vary)

    quota = subparsers.add_parser(
        "quota",
        help="show your own limits, what remains of them and your spend (client)",
        description="Show the limits the gateway applies to you (the client your token or "
        "certificate names), what remains of them now, and your spend in the current UTC "
        "day and month (QuotaService.GetQuota; asking costs nothing).",
    )
    quota.add_argument("--json", action="store_true", help="the answer as JSON on stdout")
    add_connection(quota, QUOTA_TIMEOUT, "deadline of the call (default: %(default)g)")
    quota.set_defaults(handler=_run_quota, client_parser=quota)

    upstreams = subparsers.add_parser(
        "upstreams",
        help="list the gateway's upstreams, their state and spend today (operator)",
        description="List the upstreams the gateway routes calls to (AdminService."
        "ListUpstreams): each one's kind, host, models, priority and weight, its circuit "
        "(closed, open, half_open; as the answering process sees it), what remains of its "
        "own ceilings and its spend today and this month. Needs the token (or certificate) "
        "of a client marked operator = true.",
    )
    upstreams.add_argument("--json", action="store_true", help="the answer as JSON on stdout")
    add_connection(upstreams, QUOTA_TIMEOUT, "deadline of the call (default: %(default)g)")
    upstreams.set_defaults(handler=_run_upstreams, client_parser=upstreams)


def _run(args: argparse.Namespace) -> int:
    if args.detach:
        from imagegate_server.client.jobs_command import run as submit  # gRPC only now

        return submit(args)
    from imagegate_server.client.command import run  # gRPC and the call, only now

    return run(args)


def _run_quota(args: argparse.Namespace) -> int:
    from imagegate_server.client.quota import run  # gRPC only now

    return run(args)


def _run_upstreams(args: argparse.Namespace) -> int:
    from imagegate_server.client.upstreams import run  # gRPC only now

    return run(args)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _add_output_and_connection(parser: argparse.ArgumentParser, *, partials: bool) -> None:
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the image; with n > 1: FILE-1.ext, FILE-2.ext, ...; without "
        "an extension one is added per output format (not needed for URL results, nor with "
        "--delivery stored: without it, the links are printed)",
    )
    if partials:
        out.add_argument(
            "--save-partials",
            action="store_true",
            help="also write partial images (FILE.partial-1.ext, ...) as they arrive",
        )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    add_connection(
        parser,
        DEFAULT_TIMEOUT,
        "deadline of the call (default: %(default)g; high quality takes minutes)",
    )


def add_connection(
    parser: argparse.ArgumentParser, timeout: float, timeout_help: str, *, title: str = "connection"
) -> None:
    """The options every command that calls the gateway takes: target, deadline,
    token, TLS and mTLS (read by :func:`.connection.connection_from`)."""
    conn = parser.add_argument_group(title)
    conn.add_argument(
        "--target",
        metavar="HOST:PORT",
        help=f"the gateway (default: $IMAGEGATE_TARGET or {DEFAULT_TARGET})",
    )
    conn.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=timeout,
        metavar="SECONDS",
        help=timeout_help,
    )
    conn.add_argument("--token", help="bearer token for the gateway (default: $IMAGEGATE_TOKEN)")
    conn.add_argument("--tls", action="store_true", help="connect with TLS (system CAs)")
    conn.add_argument(
        "--ca-cert", metavar="PEM", type=Path, help="TLS with this CA bundle (implies --tls)"
    )
    conn.add_argument(
        "--cert",
        metavar="PEM",
        type=Path,
        help="client certificate (chain) for gateways that require mTLS; needs --key, "
        "implies --tls",
    )
    conn.add_argument("--key", metavar="PEM", type=Path, help="private key of --cert")
