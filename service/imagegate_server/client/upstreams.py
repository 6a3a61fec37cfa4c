"""``imagegate upstreams``: the gateway's upstreams, their state and spend, for operators.

One AdminService.ListUpstreams call (read-only), printed as a table on stdout, or as
the response's JSON with ``--json``. The circuit is the answering process's (each
worker and replica keeps its own breakers); headroom and spend come from the
limiter's store, shared like every limit. Exit codes as the other client commands:
0 answered, 1 the call failed (one line on stderr, the token never in it), 2 usage.
"""

from __future__ import annotations

import argparse
from datetime import UTC

from imagegate.v1 import admin_pb2, admin_pb2_grpc

from imagegate_server.client.connection import Connection
from imagegate_server.client.quota import run_query
from imagegate_server.pricing.money import format_usd


def run(args: argparse.Namespace) -> int:
    return run_query(args, list_upstreams, describe)


async def list_upstreams(connection: Connection) -> admin_pb2.ListUpstreamsResponse:
    async with connection.channel() as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        answer: admin_pb2.ListUpstreamsResponse = await stub.ListUpstreams(
            admin_pb2.ListUpstreamsRequest(),
            metadata=connection.metadata(),
            timeout=connection.timeout,
        )
        return answer


_UNITS = {
    "upstream_requests_per_minute": "requests/min",
    "upstream_images_per_minute": "images/min",
}


def describe(answer: admin_pb2.ListUpstreamsResponse) -> str:
    """One aligned row per upstream, then where the figures come from."""
    header = ("upstream", "kind", "host", "models", "prio/weight", "circuit", "headroom", "today")
    rows = [header]
    for state in answer.upstreams:
        headroom = ", ".join(
            f"{c.remaining}/{c.per_minute} {_UNITS.get(c.name, c.name)}" for c in state.ceilings
        )
        rows.append(
            (
                state.name,
                state.kind,
                state.host,
                ",".join(state.models) or "any",
                f"{state.priority}/{state.weight}",
                state.circuit,
                headroom or "no ceilings",
                format_usd(state.spent_today_usd_micros) if answer.from_file else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    day = answer.as_of.ToDatetime(UTC).strftime("%Y-%m-%d")
    if answer.from_file:
        total = sum(state.spent_today_usd_micros for state in answer.upstreams)
        lines.append(
            f"{format_usd(total)} on {day} (UTC) over {len(answer.upstreams)} upstreams; "
            f"ceilings and spend from the {answer.limits_store} store"
        )
    else:
        lines.append(
            "one upstream (no upstreams file): its spend is every client's, see "
            "'imagegate clients spend'"
        )
    return "\n".join(lines)
