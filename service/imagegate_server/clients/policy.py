"""What one client may do and spend: the effective policy after the file's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase

from imagegate_server.models import Operation

MICRO_USD_PER_USD = 1_000_000
DEFAULT_MAX_SPOOLED_BYTES = 1024**3
"""Upload bytes one client's calls may hold on disk at once, per gateway process,
unless the clients file says otherwise: four uploads at the default request cap."""
DEFAULT_MAX_STORED_BYTES = 1024**3
"""Bytes one client may hold in the result store unless the clients file says
otherwise: about 400 images of 1536x1024 at once."""


def micro_usd(dollars: Decimal) -> int:
    """Decimal dollars as integer micro-dollars (the schema allows at most 6 places)."""
    scaled = dollars * MICRO_USD_PER_USD
    if scaled != scaled.to_integral_value():
        raise ValueError("more than 6 decimal places")
    return int(scaled)


@dataclass(frozen=True)
class Policy:
    """Limits of one client. ``None`` means unlimited (or: all allowed)."""

    requests_per_minute: int | None = None
    images_per_minute: int | None = None
    """A call costs its ``n``: OpenAI limits image models in images per minute."""
    max_concurrent: int | None = None
    max_n: int | None = None
    models: tuple[str, ...] | None = None
    """Allowed models: exact names or glob patterns (``gpt-image-2*``)."""
    operations: frozenset[Operation] | None = None
    daily_budget_micro_usd: int | None = None
    """Spend per UTC day, in integer micro-dollars."""
    monthly_budget_micro_usd: int | None = None
    """Spend per UTC calendar month, in integer micro-dollars."""
    max_queued_jobs: int | None = 100
    """Image jobs of the client waiting in the queue at once; a submit past it is
    RESOURCE_EXHAUSTED (``max_queued_jobs``). None: unlimited."""
    stamp_identity: bool = True
    """Send the client id as OpenAI's ``safety_identifier`` (or ``user``) unless the
    caller set one."""
    upstreams: tuple[str, ...] | None = None
    """Upstreams of the upstreams file the client's calls may go to (None: any)."""
    max_spooled_bytes: int | None = DEFAULT_MAX_SPOOLED_BYTES
    """Upload bytes the client's calls may hold in spool files at once, per gateway
    process (bytes past each call's in-memory threshold). Unlike the limits above,
    it has a default: disk is no caller's to fill."""
    store_results: bool = True
    """May ask for stored delivery (``DELIVERY_STORED``): results written to the
    result store, bounded by :attr:`max_stored_bytes` and kept for
    :attr:`result_retention_s`."""
    result_retention_s: int | None = None
    """How long the client's stored results are kept; None: the operator's default
    (``IMAGEGATE_STORE_RETENTION_S``). Either is capped at the operator's maximum."""
    max_stored_bytes: int | None = DEFAULT_MAX_STORED_BYTES
    """Bytes the client may hold in the result store at once. Unlike the rate and
    spend limits it has a default: storage is no caller's to fill."""
    operator: bool = False
    """May call AdminService (the operator's views, such as every client's spend).
    Set per client (``operator = true``), never inherited from ``[defaults]``."""

    def allows_model(self, model: str) -> bool:
        """Whether ``model`` matches one of :attr:`models` (case-sensitive globs)."""
        if self.models is None:
            return True
        return any(fnmatchcase(model, pattern) for pattern in self.models)

    def allows_operation(self, operation: Operation) -> bool:
        return self.operations is None or operation in self.operations


UNLIMITED = Policy()
"""The policy of a client with no limits (and of a file without defaults), except the
default cap of spooled upload bytes."""
