"""The clients of one version of the clients file, looked up by token or certificate.

A :class:`ClientRegistry` is immutable: a reload builds a new one and swaps it in
whole, so a call sees one consistent version from its first check to its last.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from imagegate_server.clients import tokens
from imagegate_server.clients.fields import normalize_identity
from imagegate_server.clients.policy import UNLIMITED, Policy, micro_usd
from imagegate_server.clients.schema import ClientEntry, ClientsDocument, PolicyFields
from imagegate_server.models import Operation

# Compared against when the token id is unknown or the token malformed, so that
# every failure costs one SHA-256 and one constant-time comparison, like a success.
_DUMMY_DIGEST = hashlib.sha256(b"imagegate: the digest of no token").digest()


@dataclass(frozen=True)
class TokenInfo:
    """A token of a client, as far as it is not secret."""

    token_id: str
    created: datetime
    expires: datetime | None


@dataclass(frozen=True)
class Client:
    id: str
    """The client's name in the clients file (stamped upstream, shown in logs)."""
    policy: Policy
    """Effective policy: the client's own fields over the file's defaults."""
    identities: tuple[str, ...] = ()
    tokens: tuple[TokenInfo, ...] = ()


@dataclass(frozen=True)
class _TokenRecord:
    client: Client
    digest: bytes
    expires: float | None
    """Unix time after which the token no longer verifies."""


def effective_policy(defaults: PolicyFields, own: PolicyFields) -> Policy:
    """``own``'s fields where it sets them, else ``defaults``' where it does, else unlimited."""

    def source(name: str) -> PolicyFields:
        # A field nobody set has its schema default: None (unlimited, or the
        # operator's retention), True, or the default spool and storage caps.
        return own if name in own.model_fields_set else defaults

    operations = source("operations").operations
    daily = source("daily_budget_usd").daily_budget_usd
    monthly = source("monthly_budget_usd").monthly_budget_usd
    return Policy(
        requests_per_minute=source("requests_per_minute").requests_per_minute,
        images_per_minute=source("images_per_minute").images_per_minute,
        max_concurrent=source("max_concurrent").max_concurrent,
        max_n=source("max_n").max_n,
        max_queued_jobs=source("max_queued_jobs").max_queued_jobs,
        models=source("models").models,
        operations=None if operations is None else frozenset(map(Operation, operations)),
        daily_budget_micro_usd=None if daily is None else micro_usd(daily),
        monthly_budget_micro_usd=None if monthly is None else micro_usd(monthly),
        stamp_identity=source("stamp_identity").stamp_identity,
        upstreams=source("upstreams").upstreams,
        max_spooled_bytes=source("max_spooled_bytes").max_spooled_bytes,
        store_results=source("store_results").store_results,
        result_retention_s=source("result_retention").result_retention,
        max_stored_bytes=source("max_stored_bytes").max_stored_bytes,
        operator=isinstance(own, ClientEntry) and own.operator,
    )


class ClientRegistry:
    """Build with :meth:`from_document` (or :meth:`empty`)."""

    __slots__ = ("_by_identity", "_by_token_id", "_clients", "defaults")

    def __init__(
        self,
        clients: Mapping[str, Client],
        by_token_id: Mapping[str, _TokenRecord],
        by_identity: Mapping[str, Client],
        defaults: Policy = UNLIMITED,
    ) -> None:
        self._clients = MappingProxyType(dict(clients))
        self._by_token_id = dict(by_token_id)
        self._by_identity = dict(by_identity)
        self.defaults = defaults
        """The file's ``[defaults]``: the policy of callers the file does not name
        (anonymous ones, where the gateway admits those)."""

    @classmethod
    def empty(cls) -> ClientRegistry:
        return cls({}, {}, {})

    @classmethod
    def from_document(cls, document: ClientsDocument) -> ClientRegistry:
        """Raises ValueError when a token id or identity belongs to two clients
        (:func:`imagegate_server.clients.fileformat.parse` reports those by field first)."""
        clients: dict[str, Client] = {}
        by_token_id: dict[str, _TokenRecord] = {}
        by_identity: dict[str, Client] = {}
        for name, entry in document.clients.items():
            client = Client(
                id=name,
                policy=effective_policy(document.defaults, entry),
                identities=entry.identities,
                tokens=tuple(TokenInfo(t.id, t.created, t.expires) for t in entry.tokens),
            )
            clients[name] = client
            for token in entry.tokens:
                if token.id in by_token_id:
                    raise ValueError("a token id belongs to two clients")
                by_token_id[token.id] = _TokenRecord(
                    client=client,
                    digest=bytes.fromhex(token.sha256),
                    expires=None if token.expires is None else token.expires.timestamp(),
                )
            for identity in entry.identities:
                if identity in by_identity:
                    raise ValueError("a certificate identity belongs to two clients")
                by_identity[identity] = client
        defaults = effective_policy(document.defaults, PolicyFields())
        return cls(clients, by_token_id, by_identity, defaults)

    @property
    def clients(self) -> Mapping[str, Client]:
        """Every client by name (read-only)."""
        return self._clients

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def by_token(self, token: str, *, now: float | None = None) -> Client | None:
        """The client holding ``token``, or None.

        Malformed, bad checksum, unknown id, wrong secret and expired all give None
        after the same work: a parse, a checksum, a dict lookup, one SHA-256 and one
        :func:`hmac.compare_digest` (against a dummy digest when the id is unknown),
        so neither the answer nor its timing tells which part was wrong.
        """
        parsed = tokens.parse(token)
        record = self._by_token_id.get(parsed.token_id)
        expected = _DUMMY_DIGEST if record is None else record.digest
        digest_matches = hmac.compare_digest(tokens.digest(token), expected)
        moment = time.time() if now is None else now
        alive = record is not None and (record.expires is None or moment < record.expires)
        if digest_matches & parsed.well_formed & alive and record is not None:
            return record.client
        return None

    def by_identity(self, identity: str) -> Client | None:
        """The client of a certificate identity (SPIFFE ID or DNS name), or None."""
        canonical = normalize_identity(identity)
        return None if canonical is None else self._by_identity.get(canonical)
