"""``imagegate clients list``: each client's token ids (never hashes), identities and
effective policy, as text or as one JSON document.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from imagegate_server.clients.editing import PROG, clients_path, read_file

if TYPE_CHECKING:
    from imagegate_server.clients.registry import Client


def list_clients(args: argparse.Namespace) -> None:
    import json

    from imagegate_server.clients.registry import ClientRegistry

    path = clients_path(args)
    loaded = read_file(path, missing_ok=False)
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
        f"{k}={_shown(v, 'all' if k in _ALL_WHEN_ABSENT else 'unlimited')}"
        for k, v in _policy_values(client).items()
    )
    lines.append(f"  policy    {policy}")
    return "\n".join(lines)


# Policy fields that, absent, allow everything rather than set no limit.
_ALL_WHEN_ABSENT = ("models", "operations", "upstreams")


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
        "max_queued_jobs": policy.max_queued_jobs,
        "models": None if policy.models is None else list(policy.models),
        "operations": (
            None if policy.operations is None else sorted(op.value for op in policy.operations)
        ),
        "daily_budget_usd": dollars(policy.daily_budget_micro_usd),
        "monthly_budget_usd": dollars(policy.monthly_budget_micro_usd),
        "stamp_identity": policy.stamp_identity,
        "upstreams": None if policy.upstreams is None else list(policy.upstreams),
        "max_spooled_bytes": policy.max_spooled_bytes,
        "store_results": policy.store_results,
        "result_retention": policy.result_retention_s,
        "max_stored_bytes": policy.max_stored_bytes,
        "operator": policy.operator,
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
