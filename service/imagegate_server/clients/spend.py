"""``imagegate clients spend``: every client's spend today and this month, for the
operator, read from the store the gateway's limiter uses.

Where from, in order:
    ``--target`` given          the gateway's AdminService.ListClientSpend, with the
                                token (or certificate) of an ``operator = true``
                                client: from any host, whatever the store
    ``IMAGEGATE_REDIS_URL`` set Redis itself (SCAN of the key prefix; on a Cluster,
                                of every primary)
    the local store (default)   the SQLite file in ``IMAGEGATE_DATA_DIR``, on the
                                gateway's host (never created if missing)
    ``IMAGEGATE_LIMITS_STORE=memory``
                                the gateway's AdminService, as with ``--target``
                                (only the gateway can read its memory)
The settings are read as ``serve`` reads them (environment, ``.env``, secrets
directory), so run it where the gateway runs, with its configuration. Budgets come
from the clients file (``--file`` or ``IMAGEGATE_CLIENTS_FILE``) when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagegate_server.clients.editing import CommandFailure, read_file

if TYPE_CHECKING:
    from imagegate_server.limits import SpendListing
    from imagegate_server.settings import Settings


@dataclass(frozen=True)
class Row:
    client: str
    today: int
    month: int
    reserved: int
    in_flight: int
    daily_budget: int | None = None
    monthly_budget: int | None = None


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    truncated: bool
    as_of: datetime
    store: str
    """Where the figures were read: ``local <path>``, ``redis <where>`` (scheme and
    hosts, no credentials) or ``gateway <target>``."""


def show_spend(args: argparse.Namespace) -> None:
    report = _from_gateway(args) if args.target is not None else _from_store(args)
    if args.json:
        print(json.dumps(_as_json(report), indent=2))
    else:
        print(_as_text(report))


def _settings() -> Settings:
    from pydantic import ValidationError

    from imagegate_server.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        names = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise CommandFailure(f"invalid settings: {names}") from None


def _from_store(args: argparse.Namespace) -> Report:
    settings = _settings()
    if settings.redis_url is not None:
        listing, store = asyncio.run(_from_redis(settings))
    elif settings.limits_store == "local":
        listing, store = _from_local(settings)
    else:
        return _from_gateway(args)
    budgets = _budgets(args, settings)
    rows = []
    for c in listing.clients:
        daily, monthly = budgets.get(c.client, (None, None))
        figures = (c.spent_today_micros, c.spent_this_month_micros, c.reserved_micros)
        rows.append(Row(c.client, *figures, c.in_flight, daily, monthly))
    return Report(rows, listing.truncated, listing.as_of, store)


def _from_local(settings: Settings) -> tuple[SpendListing, str]:
    import sqlite3

    from imagegate_server.limits.sqlite_tables import read_spend
    from imagegate_server.localdb import FILE_NAME, open_existing

    where = settings.data_dir / FILE_NAME
    try:
        connection = open_existing(settings.data_dir)
    except FileNotFoundError:
        raise CommandFailure(
            f"no limits database at {str(where.absolute())[:200]!r}: run this where the "
            f"gateway runs, with its IMAGEGATE_DATA_DIR, or ask the gateway with --target"
        ) from None
    try:
        connection.execute("BEGIN")  # one snapshot for both tables
        listing = read_spend(connection, time.time(), _limit())
    except sqlite3.Error as error:
        raise CommandFailure(
            f"cannot read {str(where.absolute())[:200]!r} ({type(error).__name__})"
        ) from None
    finally:
        connection.close()
    return listing, f"local {where.absolute()}"


async def _from_redis(settings: Settings) -> tuple[SpendListing, str]:
    import logging

    from imagegate_server.errors import ImagegateError, StartupError
    from imagegate_server.limits.factory import redis_limiter

    # The limiter's outage line is for a gateway's log; here the failure line below
    # says the same once (without a handler, Python would print both to stderr).
    logging.getLogger("imagegate_server.limits").addHandler(logging.NullHandler())
    try:
        limiter = redis_limiter(settings)
    except StartupError as error:
        raise CommandFailure(str(error)) from None
    try:
        return await limiter.list_spend(_limit()), f"redis {limiter.connection.location}"
    except ImagegateError:
        # The reason says unreachable or refusing, and why (no URL, no password).
        raise CommandFailure(
            f"cannot read spend from Redis at {limiter.connection.location}: {limiter.problem}"
        ) from None
    finally:
        await limiter.aclose()


def _limit() -> int:
    from imagegate_server.limits import MAX_SPEND_LISTING

    return MAX_SPEND_LISTING


def _budgets(
    args: argparse.Namespace, settings: Settings
) -> dict[str, tuple[int | None, int | None]]:
    path = args.file or settings.clients_file
    if path is None:
        return {}
    from imagegate_server.clients.registry import ClientRegistry

    loaded = read_file(path, missing_ok=True)
    if loaded is None:
        return {}
    registry = ClientRegistry.from_document(loaded.document)
    return {
        name: (client.policy.daily_budget_micro_usd, client.policy.monthly_budget_micro_usd)
        for name, client in registry.clients.items()
    }


def _from_gateway(args: argparse.Namespace) -> Report:
    import grpc

    from imagegate_server.client.connection import CredentialsError, connection_from
    from imagegate_server.client.errors import one_line
    from imagegate_server.client.options import UsageError

    try:
        connection = connection_from(args)
    except (UsageError, CredentialsError) as error:
        raise CommandFailure(str(error)) from None
    try:
        answer = asyncio.run(_list_client_spend(connection))
    except grpc.aio.AioRpcError as error:
        line = connection.describe_failure(error)
        if connection.token:
            line = line.replace(connection.token, "[token]")
        raise CommandFailure(one_line(line).removeprefix("imagegate: ")) from None
    rows = []
    for c in answer.clients:
        daily = c.daily_budget_usd_micros if c.HasField("daily_budget_usd_micros") else None
        monthly = c.monthly_budget_usd_micros if c.HasField("monthly_budget_usd_micros") else None
        figures = (c.spent_today_usd_micros, c.spent_this_month_usd_micros, c.reserved_usd_micros)
        rows.append(Row(c.client, *figures, c.calls_in_flight, daily, monthly))
    store = f"gateway {connection.target} ({answer.limits_store} store)"
    return Report(rows, answer.truncated, answer.as_of.ToDatetime(UTC), store)


async def _list_client_spend(connection: Any) -> Any:
    from imagegate.v1 import admin_pb2, admin_pb2_grpc

    async with connection.channel() as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        return await stub.ListClientSpend(
            admin_pb2.ListClientSpendRequest(),
            metadata=connection.metadata(),
            timeout=connection.timeout,
        )


def _as_text(report: Report) -> str:
    from imagegate_server.pricing.money import format_usd

    def budget(spent: int, limit: int | None) -> str:
        return format_usd(spent) if limit is None else f"{format_usd(spent)} of {format_usd(limit)}"

    header = ("client", "today", "this month", "reserved", "in flight")
    table = [header] + [
        (
            row.client,
            budget(row.today, row.daily_budget),
            budget(row.month, row.monthly_budget),
            format_usd(row.reserved),
            str(row.in_flight),
        )
        for row in report.rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(
            zip(line, widths, strict=True)
        )).rstrip()
        for line in table
    ]  # fmt: skip
    total_today = sum(row.today for row in report.rows)
    total_month = sum(row.month for row in report.rows)
    day = report.as_of.strftime("%Y-%m-%d")
    lines.append(
        f"{len(report.rows)} client{'s' if len(report.rows) != 1 else ''}: "
        f"{format_usd(total_today)} on {day} (UTC), {format_usd(total_month)} this month; "
        f"from {report.store}"
    )
    if report.truncated:
        lines.append(f"(more clients than {len(report.rows)}: the rest are not shown)")
    return "\n".join(lines)


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "as_of": report.as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "store": report.store,
        "truncated": report.truncated,
        "clients": [
            {
                "client": row.client,
                "spent_today_usd_micros": row.today,
                "spent_this_month_usd_micros": row.month,
                "reserved_usd_micros": row.reserved,
                "calls_in_flight": row.in_flight,
                "daily_budget_usd_micros": row.daily_budget,
                "monthly_budget_usd_micros": row.monthly_budget,
            }
            for row in report.rows
        ],
    }
