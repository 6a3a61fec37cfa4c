"""The clients file as ``imagegate clients`` works on it: finding it, reading it, and
the edits of ``add`` and ``revoke``.

An edit is validated as a whole before the file is replaced atomically, in its own
format (TOML or YAML); comments in a hand-written file are not kept. Problems are
raised as :class:`CommandFailure`, one line for stderr.

:mod:`.command` imports this module to build ``imagegate --help``, so pydantic, the
settings and the TOML/YAML libraries are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegate_server.clients.fileformat import LoadedFile

PROG = "imagegate clients"


class CommandFailure(Exception):
    """A one-line error for stderr; exit status 1."""


def clients_path(args: argparse.Namespace) -> Path:
    if args.file is not None:
        path: Path = args.file
        return path
    from pydantic import ValidationError

    from imagegate_server.settings import Settings, invalid_fields

    try:
        configured = Settings().clients_file
    except ValidationError as exc:
        raise CommandFailure(f"invalid settings: {invalid_fields(exc)}") from None
    if configured is None:
        raise CommandFailure("no clients file: pass --file or set IMAGEGATE_CLIENTS_FILE")
    return configured


def read_file(path: Path, *, missing_ok: bool) -> LoadedFile | None:
    from imagegate_server.clients.fileformat import ClientsFileError, file_format, load

    try:
        file_format(path)
        if missing_ok and not path.exists():
            return None
        return load(path)
    except ClientsFileError as exc:
        raise CommandFailure(str(exc)) from None


def _data(path: Path, *, missing_ok: bool) -> dict[str, Any]:
    loaded = read_file(path, missing_ok=missing_ok)
    return {} if loaded is None else loaded.data


def write_file(path: Path, data: dict[str, Any]) -> None:
    from imagegate_server.clients.fileformat import (
        ClientsFileError,
        file_format,
        parse,
        render,
        write_atomically,
    )

    fmt = file_format(path)
    content = render(data, fmt)
    try:
        # What is written must load: this also checks the values given on the command line.
        parse(path, content, fmt)
    except ClientsFileError as exc:
        raise CommandFailure(f"not changed: {exc}") from None
    try:
        write_atomically(path, content)
    except OSError as exc:
        raise CommandFailure(
            f"cannot write {str(path)[:200]!r} ({exc.strerror or 'I/O error'})"
        ) from None


def add(args: argparse.Namespace) -> None:
    from imagegate_server.clients import tokens
    from imagegate_server.clients.fields import CLIENT_NAME
    from imagegate_server.clients.schema import POLICY_FIELDS

    if not CLIENT_NAME.fullmatch(args.name):
        raise CommandFailure(
            "a client name is 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    path = clients_path(args)
    data = _data(path, missing_ok=True)
    clients: dict[str, Any] = data.setdefault("clients", {})
    created = args.name not in clients
    client: dict[str, Any] = clients.setdefault(args.name, {})
    for name in POLICY_FIELDS:  # the command has an option for each
        value = getattr(args, name)
        if value is not None:
            client[name] = value
    if args.operator is not None:
        client["operator"] = args.operator
    if args.identity:
        identities = list(client.get("identities", []))
        identities.extend(i for i in args.identity if i not in identities)
        client["identities"] = identities
    new_token = None
    if not args.no_token:
        taken = {
            str(entry.get("id"))
            for other in clients.values()
            if isinstance(other, dict)
            for entry in other.get("tokens", [])
            if isinstance(entry, dict)
        }
        new_token = tokens.generate(taken)
        entry: dict[str, Any] = {
            "id": new_token.token_id,
            "sha256": new_token.sha256,
            "created": datetime.now(UTC).replace(microsecond=0),
        }
        if args.expires is not None:
            entry["expires"] = args.expires
        client["tokens"] = [*client.get("tokens", []), entry]
    write_file(path, data)
    what = "created client" if created else "updated client"
    if new_token is None:
        print(f"{PROG}: {what} {args.name} in {str(path)[:200]}", file=sys.stderr)
        return
    print(new_token.token, flush=True)
    print(
        f"{PROG}: {what} {args.name} with token id {new_token.token_id} in "
        f"{str(path)[:200]}; the token above is shown only this once",
        file=sys.stderr,
    )


def revoke(args: argparse.Namespace) -> None:
    path = clients_path(args)
    data = _data(path, missing_ok=False)
    clients: dict[str, Any] = data.get("clients", {})
    if args.name not in clients:
        raise CommandFailure(f"no client {args.name!r} in {str(path)[:200]}")
    if args.token_id is None:
        del clients[args.name]
        write_file(path, data)
        print(f"{PROG}: revoked client {args.name}", file=sys.stderr)
        return
    client = clients[args.name]
    kept = [t for t in client.get("tokens", []) if t.get("id") != args.token_id]
    if len(kept) == len(client.get("tokens", [])):
        raise CommandFailure(f"client {args.name} has no token {args.token_id!r}")
    client["tokens"] = kept
    write_file(path, data)
    print(f"{PROG}: revoked token {args.token_id} of client {args.name}", file=sys.stderr)
