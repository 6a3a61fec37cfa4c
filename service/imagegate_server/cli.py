"""The ``imagegate`` console script: one sub-command per module.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a callable taking the parsed namespace and returning an exit code).
Every module is imported to build ``--help``, so registering must stay cheap: a
command module imports the server, the emulator, Pillow or gRPC only inside its
handler (a test runs ``imagegate --help`` and checks what got imported).

Every parser is a :class:`CommandParser`: a usage error is one line and a pointer to
``--help``, and ``add_parser(..., intermixed=True)`` gives a command whose options may
sit between its positionals.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

# Modules that contribute sub-commands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "imagegate_server.serve",
    "imagegate_server.config_command",
    "imagegate_server.demo",
    "imagegate_server.emulator.command",
    "imagegate_server.healthcheck",
    "imagegate_server.client.parsers",
    "imagegate_server.client.jobs_parsers",
    "imagegate_server.bench.command",
    "imagegate_server.clients.command",
)


class CommandParser(argparse.ArgumentParser):
    """A parser whose usage errors are one line, and that can take options between its
    positionals.

    argparse prints the whole usage block before its error: for the client commands
    that is twenty lines of options burying the one line that says what is wrong.

    Plain argparse binds positionals in the first run of them it sees, so for
    ``edit a.png b.png --mask m.png PROMPT`` it would make ``b.png`` the prompt and
    then reject ``PROMPT``; intermixed parsing collects all positionals first. The
    subparsers action calls ``parse_known_args`` on the sub-command's parser, so
    that is where intermixing is switched on; the guard sends the nested calls that
    intermixed parsing itself makes back to the plain parser.
    """

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed
        self._intermixing = False

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"imagegate: error: {text} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self._intermixed or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="imagegate",
        description="gRPC gateway to OpenAI's Images API, with an offline emulator.",
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
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
