"""``imagegate serve``: run the gateway until SIGTERM/SIGINT, then drain gracefully.

``--workers N|auto`` runs N gateway processes on one port under a supervisor
(:mod:`imagegate_server.workers`); without it one process serves, as before.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegate_server import allocator, eventloop, logs
from imagegate_server.errors import StartupError

if TYPE_CHECKING:
    from imagegate_server.gateway.server import Gateway
    from imagegate_server.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the gRPC gateway (on the embedded emulator when no OpenAI key is set)",
        description="Run the gRPC gateway. Configuration: IMAGEGATE_* environment "
        "variables, .env, secrets directory; see README.",
    )
    parser.add_argument("--host", help="bind address (IMAGEGATE_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port, 0 for any (IMAGEGATE_PORT; 50051)")
    parser.add_argument(
        "--port-file", type=Path, help="write the bound port to this file once serving"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        metavar="N|auto",
        help="run N gateway processes on the port under a supervisor; auto = one per CPU "
        "(IMAGEGATE_WORKERS; default: one process, no supervisor)",
    )
    parser.set_defaults(handler=run)


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and 1 <= int(text) <= 256:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a number from 1 to 256 or 'auto', not {text!r}")


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: cli.py imports this module for --help.
    from pydantic import ValidationError

    from imagegate_server.settings import Settings, invalid_fields

    options = (("host", args.host), ("port", args.port), ("workers", args.workers))
    overrides = {k: v for k, v in options if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"imagegate serve: invalid settings: {invalid_fields(exc)}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    try:
        if settings.workers is not None:
            from imagegate_server.workers import Supervisor, worker_count

            supervisor = Supervisor(settings, worker_count(settings.workers), args.port_file)
            return asyncio.run(supervisor.run())
        return eventloop.run(_serve(settings, args.port_file), settings.event_loop)
    except StartupError as exc:
        # The gateway has released what it opened; the operator needs one line.
        print(f"imagegate serve: {exc}", file=sys.stderr)
        return 1


async def _serve(settings: Settings, port_file: Path | None) -> int:
    from imagegate_server.gateway.server import Gateway
    from imagegate_server.metrics import multiprocess

    directory = os.environ.get(multiprocess.ENV)
    if directory:
        # prometheus-client writes to this directory whenever the variable is set;
        # one process still must not start from a previous run's values.
        multiprocess.prepare(Path(directory))
    return await serve_gateway(Gateway(settings), port_file)


async def serve_gateway(
    gateway: Gateway,
    port_file: Path | None,
    *,
    stop: asyncio.Event | None = None,
    on_serving: Callable[[Gateway], None] | None = None,
) -> int:
    """Start ``gateway``, report it (port file, ``on_serving``), serve until SIGTERM,
    SIGINT or ``stop``, then drain."""
    stopping = stop or asyncio.Event()
    allocator.fix_mmap_threshold(gateway.settings.malloc_mmap_threshold_bytes)
    await gateway.start()
    if port_file is not None:
        try:
            await asyncio.to_thread(port_file.write_text, f"{gateway.port}\n")
        except OSError:
            await gateway.stop(0)
            raise StartupError(f"cannot write the port file {str(port_file)[:200]!r}") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if on_serving is not None:
        on_serving(gateway)
    await stopping.wait()
    await gateway.stop()
    return 0
