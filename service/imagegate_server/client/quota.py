"""``imagegate quota``: the caller's own limits, what remains of them, and its spend.

One GetQuota call (read-only: asking charges nothing), printed for a person on
stdout, or as the response's JSON with ``--json``. Exit codes as the other client
commands: 0 answered, 1 the call failed (one line on stderr, the token never in
it), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from imagegate.v1 import quota_pb2, quota_pb2_grpc

from imagegate_server.client.command import fail
from imagegate_server.client.connection import Connection, CredentialsError, connection_from
from imagegate_server.client.errors import PROGRAM
from imagegate_server.client.options import UsageError
from imagegate_server.client.output import human_size
from imagegate_server.pricing.money import format_usd
from imagegate_server.wording import plural

_OPERATIONS = {
    quota_pb2.OPERATION_GENERATION: "generation",
    quota_pb2.OPERATION_EDIT: "edit",
    quota_pb2.OPERATION_VARIATION: "variation",
}
_PERIODS = {quota_pb2.BUDGET_PERIOD_DAY: "day", quota_pb2.BUDGET_PERIOD_MONTH: "month"}


def run(args: argparse.Namespace) -> int:
    return run_query(args, get_quota, describe)


def run_query(
    args: argparse.Namespace,
    ask: Callable[[Connection], Coroutine[Any, Any, Message]],
    describe: Callable[[Any], str],
) -> int:
    """A read-only command's run: one call (``ask``), its answer printed for a person
    (``describe``) or as JSON with ``--json``; its exit code."""
    parser: argparse.ArgumentParser = args.client_parser
    try:
        connection = connection_from(args)
    except UsageError as error:
        parser.error(str(error))
    except CredentialsError as error:
        return fail(f"{PROGRAM}: {error}")
    try:
        answer: Message = asyncio.run(ask(connection))
    except grpc.aio.AioRpcError as error:
        return fail(connection.describe_failure(error), connection.token)
    if args.json:
        print(json_format.MessageToJson(answer, preserving_proto_field_name=True))
    else:
        print(describe(answer))
    return 0


async def get_quota(connection: Connection) -> quota_pb2.GetQuotaResponse:
    async with connection.channel() as channel:
        stub = quota_pb2_grpc.QuotaServiceStub(channel)
        answer: quota_pb2.GetQuotaResponse = await stub.GetQuota(
            quota_pb2.GetQuotaRequest(), metadata=connection.metadata(), timeout=connection.timeout
        )
        return answer


def describe(answer: quota_pb2.GetQuotaResponse) -> str:
    """The answer as aligned lines: one per limit, then spend and what may be called."""
    rows: list[tuple[str, str]] = [("client", answer.client)]
    for rate in answer.rates:
        name = rate.name + (" (whole gateway)" if rate.gateway_wide else "")
        text = f"{rate.remaining} of {rate.burst} left, {rate.per_minute} per minute"
        full_in = rate.full_in.ToTimedelta().total_seconds()
        if full_in > 0:
            text += f"; all {rate.burst} again in {full_in:.1f} s"
        rows.append((name, text))
    if answer.HasField("concurrency"):
        slots = answer.concurrency
        rows.append(("concurrent calls", f"{slots.in_use} of {slots.max_concurrent} in use"))
    else:
        rows.append(("concurrent calls", "unlimited"))
    for budget in answer.budgets:
        period = _PERIODS.get(budget.period, "period")
        ends = budget.period_ends_at.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M UTC")
        rows.append(
            (
                budget.name,
                f"{format_usd(budget.remaining_usd_micros)} left of "
                f"{format_usd(budget.limit_usd_micros)} per UTC {period} "
                f"({format_usd(budget.spent_usd_micros)} spent, "
                f"{format_usd(budget.reserved_usd_micros)} reserved; starts afresh {ends})",
            )
        )
    if not answer.budgets:
        rows.append(("budgets", "none"))
    rows.append(
        (
            "spent",
            f"{format_usd(answer.spent_today_usd_micros)} today, "
            f"{format_usd(answer.spent_this_month_usd_micros)} this month (UTC), "
            f"{format_usd(answer.reserved_usd_micros)} reserved by calls in flight",
        )
    )
    for spend in answer.upstream_spend:
        rows.append(
            (
                f"  on {spend.upstream}",
                f"{format_usd(spend.spent_today_usd_micros)} today, "
                f"{format_usd(spend.spent_this_month_usd_micros)} this month",
            )
        )
    rows.append(("models", "all" if answer.all_models else ", ".join(answer.model_patterns)))
    operations = [_OPERATIONS.get(op, str(op)) for op in answer.operations]
    rows.append(("operations", ", ".join(operations) or "none"))
    rows.append(("images per call", str(answer.max_n) if answer.HasField("max_n") else "any n"))
    rows.append(("stored results", _storage(answer.storage)))
    rows.append(("price table", answer.price_table))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in rows)


def _storage(storage: quota_pb2.StorageQuota) -> str:
    """What the client holds in the result store, of what it may (DELIVERY_STORED)."""
    if not storage.may_store:
        return "not allowed (DELIVERY_STORED is refused)"
    held = f"{human_size(storage.stored_bytes)} in {plural(storage.stored_objects, 'image')}"
    limit = (
        f"of {human_size(storage.max_stored_bytes)}"
        if storage.HasField("max_stored_bytes")
        else "(no quota)"
    )
    hours = storage.retention.ToTimedelta().total_seconds() / 3600
    return f"{held} {limit}, kept {hours:g} h"
