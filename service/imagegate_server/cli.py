"""The ``imagegate`` console script: one sub-command per module.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a callable taking the parsed namespace and returning an exit code).
Importing the command modules lazily keeps ``imagegate --help`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Modules that contribute sub-commands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "imagegate_server.serve",
    "imagegate_server.demo",
    "imagegate_server.emulator.command",
    "imagegate_server.healthcheck",
    "imagegate_server.client.command",
    "imagegate_server.bench.command",
    "imagegate_server.clients.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagegate",
        description="gRPC gateway to OpenAI's Images API, with an offline emulator.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
