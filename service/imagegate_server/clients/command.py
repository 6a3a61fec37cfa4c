"""``imagegate clients add | list | revoke``: edit the clients file.

``add`` prints the new token on stdout and nothing else (so ``TOKEN=$(imagegate
clients add team-a)`` works); everything for the operator goes to stderr. Edits
are validated as a whole before the file is replaced atomically, in its own format
(TOML or YAML); comments in a hand-written file are not kept.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegate_server.clients.fileformat import LoadedFile
    from imagegate_server.clients.registry import Client

PROG = "imagegate clients"
_RELATIVE = re.compile(r"(\d{1,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class _Failure(Exception):
    """A one-line error for stderr; exit status 1."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "clients",
        help="add, list or revoke callers in the clients file",
        description="Edit the clients file (IMAGEGATE_CLIENTS_FILE): tokens, certificate "
        "identities and per-client limits. See docs/clients.example.toml.",
    )
    commands = parser.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--file",
        type=Path,
        help="the clients file, .toml or .yaml (default: $IMAGEGATE_CLIENTS_FILE)",
    )

    add = commands.add_parser(
        "add",
        parents=[common],
        help="create a client if needed, give it a new token, set its limits",
        description="Create the client NAME if needed and add a token to it (printed once "
        "on stdout). Limit options set the client's own values; unset ones inherit "
        "[defaults]. 'unlimited' overrides a default with no limit.",
    )
    add.add_argument("name", metavar="NAME", help="client id: letters, digits, '.', '_', '-'")
    add.add_argument("--no-token", action="store_true", help="add no token (certificate-only)")
    add.add_argument(
        "--expires", type=_expiry, help="token expiry: 90d, 12h, 30m or an ISO 8601 time"
    )
    add.add_argument(
        "--identity",
        action="append",
        default=[],
        help="certificate identity (spiffe://... or DNS name); repeatable",
    )
    for name in ("requests_per_minute", "images_per_minute", "max_concurrent", "max_n"):
        add.add_argument(f"--{name.replace('_', '-')}", type=_limit, metavar="N", dest=name)
    add.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="PATTERN",
        help="allowed model, name or glob (gpt-image-2*); repeatable; replaces the list",
    )
    add.add_argument(
        "--operation",
        action="append",
        dest="operations",
        choices=("generation", "edit", "variation"),
        help="allowed operation; repeatable; replaces the list",
    )
    for name in ("daily_budget_usd", "monthly_budget_usd"):
        add.add_argument(f"--{name.replace('_', '-')}", type=_budget, metavar="USD", dest=name)
    add.add_argument(
        "--stamp-identity",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the client id as OpenAI's safety_identifier/user (default: inherit)",
    )
    add.set_defaults(handler=run_add)

    listing = commands.add_parser(
        "list",
        parents=[common],
        help="show clients, token ids, identities and effective limits",
        description="Show each client's token ids (never hashes), identities and "
        "effective policy (its own values over [defaults]).",
    )
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing.set_defaults(handler=run_list)

    revoke = commands.add_parser(
        "revoke",
        parents=[common],
        help="remove one token of a client, or the whole client",
        description="Remove the client NAME (its tokens, identities and limits), or only "
        "the token --token-id ID. A running gateway picks the change up within "
        "IMAGEGATE_CLIENTS_RELOAD_S.",
    )
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument("--token-id", help="revoke only this token (see 'list')")
    revoke.set_defaults(handler=run_revoke)


def _limit(text: str) -> int | str:
    if text.strip().lower() == "unlimited":
        return "unlimited"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected an integer or "unlimited"') from None


def _budget(text: str) -> Decimal | str:
    if text.strip().lower() == "unlimited":
        return "unlimited"
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError('expected US dollars (25.50) or "unlimited"') from None


def _expiry(text: str) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        return now + timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected 90d, 12h, 30m or an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("an ISO 8601 time needs a time zone (Z or +01:00)")
    return moment.astimezone(UTC)


def _run(action: Any, args: argparse.Namespace) -> int:
    try:
        action(args)
    except _Failure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_add(args: argparse.Namespace) -> int:
    return _run(_add, args)


def run_list(args: argparse.Namespace) -> int:
    return _run(_list, args)


def run_revoke(args: argparse.Namespace) -> int:
    return _run(_revoke, args)


def _clients_path(args: argparse.Namespace) -> Path:
    if args.file is not None:
        path: Path = args.file
        return path
    from pydantic import ValidationError

    from imagegate_server.settings import Settings

    try:
        configured = Settings().clients_file
    except ValidationError as exc:
        names = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise _Failure(f"invalid settings: {names}") from None
    if configured is None:
        raise _Failure("no clients file: pass --file or set IMAGEGATE_CLIENTS_FILE")
    return configured


def _read(path: Path, *, missing_ok: bool) -> LoadedFile | None:
    from imagegate_server.clients.fileformat import ClientsFileError, file_format, load

    try:
        file_format(path)
        if missing_ok and not path.exists():
            return None
        return load(path)
    except ClientsFileError as exc:
        raise _Failure(str(exc)) from None


def _data(path: Path, *, missing_ok: bool) -> dict[str, Any]:
    loaded = _read(path, missing_ok=missing_ok)
    return {} if loaded is None else loaded.data


def _write(path: Path, data: dict[str, Any]) -> None:
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
        raise _Failure(f"not changed: {exc}") from None
    try:
        write_atomically(path, content)
    except OSError as exc:
        raise _Failure(
            f"cannot write {str(path)[:200]!r} ({exc.strerror or 'I/O error'})"
        ) from None


def _add(args: argparse.Namespace) -> None:
    from imagegate_server.clients import tokens
    from imagegate_server.clients.schema import CLIENT_NAME

    if not CLIENT_NAME.fullmatch(args.name):
        raise _Failure(
            "a client name is 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    path = _clients_path(args)
    data = _data(path, missing_ok=True)
    clients: dict[str, Any] = data.setdefault("clients", {})
    created = args.name not in clients
    client: dict[str, Any] = clients.setdefault(args.name, {})
    for name in (
        "requests_per_minute",
        "images_per_minute",
        "max_concurrent",
        "max_n",
        "models",
        "operations",
        "daily_budget_usd",
        "monthly_budget_usd",
        "stamp_identity",
    ):
        value = getattr(args, name)
        if value is not None:
            client[name] = value
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
    _write(path, data)
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


def _list(args: argparse.Namespace) -> None:
    import json

    from imagegate_server.clients.registry import ClientRegistry

    path = _clients_path(args)
    loaded = _read(path, missing_ok=False)
    assert loaded is not None
    registry = ClientRegistry.from_document(loaded.document)
    clients = [registry.clients[name] for name in sorted(registry.clients)]
    if args.json:
        print(json.dumps([_client_json(c) for c in clients], indent=2))
        return
    if not clients:
        print(f"{PROG}: no clients in {str(path)[:200]}", file=sys.stderr)
    for client in clients:
        print(_client_text(client))


def _client_json(client: Client) -> dict[str, Any]:
    return {
        "client": client.id,
        "tokens": [
            {
                "id": t.token_id,
                "created": _time(t.created),
                "expires": None if t.expires is None else _time(t.expires),
            }
            for t in client.tokens
        ],
        "identities": list(client.identities),
        "policy": _policy_values(client),
    }


def _client_text(client: Client) -> str:
    now = datetime.now(UTC)
    lines = [client.id]
    for token in client.tokens:
        if token.expires is None:
            expiry = "expires never"
        else:
            state = "expired" if token.expires <= now else "expires"
            expiry = f"{state} {_time(token.expires)}"
        lines.append(f"  token     {token.token_id}  created {_time(token.created)}  {expiry}")
    lines.extend(f"  identity  {identity}" for identity in client.identities)
    if not client.tokens and not client.identities:
        lines.append("  (no token or identity: cannot authenticate)")
    policy = " ".join(
        f"{k}={_shown(v, 'all' if k in ('models', 'operations') else 'unlimited')}"
        for k, v in _policy_values(client).items()
    )
    lines.append(f"  policy    {policy}")
    return "\n".join(lines)


def _policy_values(client: Client) -> dict[str, Any]:
    policy = client.policy

    def dollars(micro: int | None) -> str | None:
        if micro is None:
            return None
        whole, _, fraction = f"{Decimal(micro) / 1_000_000:.6f}".partition(".")
        return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"

    return {
        "requests_per_minute": policy.requests_per_minute,
        "images_per_minute": policy.images_per_minute,
        "max_concurrent": policy.max_concurrent,
        "max_n": policy.max_n,
        "models": None if policy.models is None else list(policy.models),
        "operations": (
            None if policy.operations is None else sorted(op.value for op in policy.operations)
        ),
        "daily_budget_usd": dollars(policy.daily_budget_micro_usd),
        "monthly_budget_usd": dollars(policy.monthly_budget_micro_usd),
        "stamp_identity": policy.stamp_identity,
    }


def _shown(value: Any, absent: str) -> str:
    if value is None:
        return absent
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value) if value else "(none)"
    return str(value)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _revoke(args: argparse.Namespace) -> None:
    path = _clients_path(args)
    data = _data(path, missing_ok=False)
    clients: dict[str, Any] = data.get("clients", {})
    if args.name not in clients:
        raise _Failure(f"no client {args.name!r} in {str(path)[:200]}")
    if args.token_id is None:
        del clients[args.name]
        _write(path, data)
        print(f"{PROG}: revoked client {args.name}", file=sys.stderr)
        return
    client = clients[args.name]
    kept = [t for t in client.get("tokens", []) if t.get("id") != args.token_id]
    if len(kept) == len(client.get("tokens", [])):
        raise _Failure(f"client {args.name} has no token {args.token_id!r}")
    client["tokens"] = kept
    _write(path, data)
    print(f"{PROG}: revoked token {args.token_id} of client {args.name}", file=sys.stderr)
