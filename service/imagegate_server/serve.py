"""``imagegate serve``: run the gateway until SIGTERM/SIGINT, then drain gracefully."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegate_server import logs
from imagegate_server.errors import StartupError

if TYPE_CHECKING:
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: cli.py imports this module for --help.
    from pydantic import ValidationError

    from imagegate_server.settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        # Name the settings, never echo their values (one may be the key).
        names = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        print(f"imagegate serve: invalid settings: {names}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    try:
        return asyncio.run(_serve(settings, args.port_file))
    except StartupError as exc:
        # The gateway has released what it opened; the operator needs one line.
        print(f"imagegate serve: {exc}", file=sys.stderr)
        return 1


async def _serve(settings: Settings, port_file: Path | None) -> int:
    from imagegate_server.gateway.server import Gateway

    gateway = Gateway(settings)
    await gateway.start()
    if port_file is not None:
        try:
            await asyncio.to_thread(port_file.write_text, f"{gateway.port}\n")
        except OSError:
            await gateway.stop(0)
            raise StartupError(f"cannot write the port file {str(port_file)[:200]!r}") from None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await gateway.stop()
    return 0
