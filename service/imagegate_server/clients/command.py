"""``imagegate clients add | list | revoke``: the parsers and their handlers.

``add`` prints the new token on stdout and nothing else (so ``TOKEN=$(imagegate
clients add team-a)`` works); everything for the operator goes to stderr. The edits
themselves are in :mod:`.editing`, the listing in :mod:`.listing`; a handler turns
their :class:`~.editing.CommandFailure` into one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from imagegate_server.clients.editing import PROG, CommandFailure, add, revoke
from imagegate_server.clients.listing import list_clients

_RELATIVE = re.compile(r"(\d{1,6})([dhm])")


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
        "--expires",
        type=_expiry,
        help="token expiry, in the future: 90d, 12h, 30m or an ISO 8601 time with a zone",
    )
    add.add_argument(
        "--identity",
        action="append",
        default=[],
        help="certificate identity (spiffe://... or DNS name); repeatable",
    )
    for name in (
        "requests_per_minute",
        "images_per_minute",
        "max_concurrent",
        "max_n",
        "max_queued_jobs",
    ):
        add.add_argument(f"--{name.replace('_', '-')}", type=_limit, metavar="N", dest=name)
    add.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="PATTERN",
        help="allowed model, name or glob (gpt-image-2-*: its snapshots); repeatable; "
        "replaces the list",
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
        "--upstream",
        action="append",
        dest="upstreams",
        metavar="NAME",
        help="an upstream (of the upstreams file) the client's calls may go to; "
        "repeatable; replaces the list (default: inherit; none set: any upstream)",
    )
    add.add_argument(
        "--max-spooled-bytes",
        type=_byte_size,
        metavar="BYTES",
        dest="max_spooled_bytes",
        help='upload bytes its calls may hold on disk at once, per process ("2 GiB", '
        '"unlimited"; default 1 GiB)',
    )
    add.add_argument(
        "--store-results",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="may ask for stored delivery, results as links in the result store "
        "(default: inherit; allowed unless [defaults] says otherwise)",
    )
    add.add_argument(
        "--result-retention",
        type=_retention,
        metavar="DURATION",
        dest="result_retention",
        help='how long its stored results are kept ("24h", "7d", seconds; "default": '
        "the operator's; capped at IMAGEGATE_STORE_MAX_RETENTION_S)",
    )
    add.add_argument(
        "--max-stored-bytes",
        type=_byte_size,
        metavar="BYTES",
        dest="max_stored_bytes",
        help='bytes its stored results may take at once ("5 GiB", "unlimited"; default 1 GiB)',
    )
    add.add_argument(
        "--stamp-identity",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the client id as OpenAI's safety_identifier/user (default: inherit)",
    )
    add.add_argument(
        "--operator",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="may call AdminService: every client's spend, as 'imagegate clients spend' "
        "shows it through the gateway (default: keep; new clients are not operators)",
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

    spend = commands.add_parser(
        "spend",
        parents=[common],
        help="show every client's spend today and this month (operator)",
        description="Show every client's spend in the current UTC day and month, with calls "
        "in flight, from the store the gateway's limiter uses: the local database "
        "(IMAGEGATE_DATA_DIR) or Redis (IMAGEGATE_REDIS_URL) read directly, on the gateway's "
        "host and with its settings; or, with --target (and always for "
        "IMAGEGATE_LIMITS_STORE=memory), the gateway's AdminService, which needs the token "
        "of a client marked operator = true. --file adds the clients' budgets.",
    )
    spend.add_argument("--json", action="store_true", help="one JSON document on stdout")
    from imagegate_server.client.parsers import add_connection

    add_connection(
        spend,
        30.0,
        "deadline of the call (default: %(default)g)",
        title="through the gateway (with --target, or when its limits are in its memory)",
    )
    spend.set_defaults(handler=run_spend)


def _limit(text: str) -> int | str:
    if text.strip().lower() == "unlimited":
        return "unlimited"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected an integer or "unlimited"') from None


def _byte_size(text: str) -> int | str:
    from imagegate_server.clients.fields import byte_size

    if text.strip().lower() == "unlimited":
        return "unlimited"
    try:
        return byte_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            'expected bytes (1073741824, "2 GiB") or "unlimited"'
        ) from None


def _retention(text: str) -> int | str:
    from imagegate_server.clients.fields import MAX_RETENTION_S, MIN_RETENTION_S, duration_s

    if text.strip().lower() == "default":
        return "default"
    try:
        seconds = duration_s(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected 24h, 7d, seconds or "default"') from None
    if not MIN_RETENTION_S <= seconds <= MAX_RETENTION_S:
        raise argparse.ArgumentTypeError("expected a retention from 60 s to 365 d")
    return seconds


def _budget(text: str) -> Decimal | str:
    if text.strip().lower() == "unlimited":
        return "unlimited"
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError('expected US dollars (25.50) or "unlimited"') from None


def _expiry(text: str) -> datetime:
    from imagegate_server.clients.fields import duration_s

    now = datetime.now(UTC).replace(microsecond=0)
    if _RELATIVE.fullmatch(text.strip()):
        moment = now + timedelta(seconds=duration_s(text))
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError("expected 90d, 12h, 30m or an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise argparse.ArgumentTypeError("an ISO 8601 time needs a time zone (Z or +01:00)")
        moment = moment.astimezone(UTC)
    if moment <= now:
        # The token would be printed once and never work: refuse before writing it.
        raise argparse.ArgumentTypeError(
            f"{moment:%Y-%m-%dT%H:%M:%SZ} is not in the future (now: {now:%Y-%m-%dT%H:%M:%SZ})"
        )
    return moment


def _run(action: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    try:
        action(args)
    except CommandFailure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_add(args: argparse.Namespace) -> int:
    return _run(add, args)


def run_list(args: argparse.Namespace) -> int:
    return _run(list_clients, args)


def run_revoke(args: argparse.Namespace) -> int:
    return _run(revoke, args)


def run_spend(args: argparse.Namespace) -> int:
    from imagegate_server.clients.spend import show_spend

    return _run(show_spend, args)
