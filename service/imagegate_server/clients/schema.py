"""The clients file's one schema (TOML and YAML alike), as pydantic models.

Every field has its own validator (:mod:`.fields`) with an operator-facing message, so
that a mistake is reported as ``clients.team-a.images_per_minute: must be an integer >= 1``
and never with the offending value (it might be a pasted token). Fields absent from
a client inherit ``[defaults]``; the string ``"unlimited"`` overrides a default with
no limit (and is how a file says "no limit" explicitly).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from imagegate_server.clients.fields import (
    Budget,
    ByteSize,
    ClientName,
    Flag,
    Identities,
    Limit,
    Models,
    Operations,
    Retention,
    Sha256,
    Timestamp,
    TokenId,
    Upstreams,
)
from imagegate_server.clients.policy import DEFAULT_MAX_SPOOLED_BYTES, DEFAULT_MAX_STORED_BYTES
from imagegate_server.livefiles import documents

# Policy fields, in file order; ClientEntry adds tokens and identities.
POLICY_FIELDS = (
    "requests_per_minute",
    "images_per_minute",
    "max_concurrent",
    "max_n",
    "max_queued_jobs",
    "models",
    "operations",
    "daily_budget_usd",
    "monthly_budget_usd",
    "stamp_identity",
    "upstreams",
    "max_spooled_bytes",
    "store_results",
    "result_retention",
    "max_stored_bytes",
)


class _Strict(BaseModel):
    # Unknown fields are errors: a misspelt limit must not silently mean "unlimited".
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyFields(_Strict):
    """The policy part, shared by ``[defaults]`` and each client. Absent = inherit."""

    requests_per_minute: Limit = None
    images_per_minute: Limit = None
    max_concurrent: Limit = None
    max_n: Limit = None
    # Unlike the other limits, set unless a file says "unlimited": a queue that takes
    # any number of jobs would let one client fill the store.
    max_queued_jobs: Limit = 100
    models: Models | None = None
    operations: Operations | None = None
    daily_budget_usd: Budget = None
    monthly_budget_usd: Budget = None
    stamp_identity: Flag = True
    upstreams: Upstreams | None = None
    """The upstreams (of the upstreams file) the client's calls may go to, e.g. its
    own OpenAI project for chargeback; absent: any that serves the model."""
    max_spooled_bytes: ByteSize = DEFAULT_MAX_SPOOLED_BYTES
    store_results: Flag = True
    result_retention: Retention = None
    max_stored_bytes: ByteSize = DEFAULT_MAX_STORED_BYTES


class TokenEntry(_Strict):
    id: TokenId
    sha256: Sha256
    created: Timestamp
    expires: Timestamp | None = None


class ClientEntry(PolicyFields):
    tokens: tuple[TokenEntry, ...] = ()
    identities: Identities = ()
    operator: Flag = False
    """May call AdminService (every client's spend). Per client only: ``[defaults]``
    has no such field, so no file can make every caller an operator by default."""


class ClientsDocument(_Strict):
    defaults: PolicyFields = PolicyFields()
    clients: dict[ClientName, ClientEntry] = {}


def cross_check(document: ClientsDocument) -> tuple[str, str] | None:
    """``(where, problem)`` for a token id or identity that two entries claim, or None.

    A token id is the lookup key, and an identity must name one client, so either
    belonging to two entries would make the answer depend on file order."""
    token_owner: dict[str, str] = {}
    identity_owner: dict[str, str] = {}
    for name, entry in document.clients.items():
        for index, token in enumerate(entry.tokens):
            owner = token_owner.setdefault(token.id, name)
            if owner != name or sum(t.id == token.id for t in entry.tokens) > 1:
                return f"clients.{name}.tokens[{index}].id", _claimed("token id", owner, name)
        for index, identity in enumerate(entry.identities):
            owner = identity_owner.setdefault(identity, name)
            if owner != name or entry.identities.count(identity) > 1:
                return f"clients.{name}.identities[{index}]", _claimed("identity", owner, name)
    return None


def _claimed(what: str, owner: str, name: str) -> str:
    return f"{what} listed twice" if owner == name else f"{what} already belongs to client {owner}"


def describe(error: ValidationError) -> tuple[str, str]:
    """``(where, problem)`` of the first error: a dotted field path and a short
    message. Never the input value, nor a key that looks like a token."""
    return documents.describe(error, lambda key: "igk_" in key)
