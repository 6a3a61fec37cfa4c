"""Who is calling: a bearer token from the clients file, or a client certificate.

Every call is authenticated before any of its request bytes are judged or any
upload is read. A presented token must be valid, always; whether a call with no
credentials is served depends on the configuration: with a clients file or a
client CA (and ``IMAGEGATE_AUTH=auto``) every call must authenticate; otherwise
callers without credentials are ``anonymous`` and get the file's default policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from imagegate_server.clients import ClientRegistry, ClientsFile, Policy, from_authorization
from imagegate_server.errors import Unauthenticated
from imagegate_server.tls import peer_identity

ANONYMOUS = "anonymous"
# One message for every failure, so that a caller cannot tell which part was wrong.
_INVALID = "the call's credentials are not valid for this gateway"
_MISSING = (
    "this gateway requires credentials: a bearer token in the 'authorization' "
    "metadata, or a client certificate"
)


@dataclass(frozen=True)
class Caller:
    client: str
    """The client id: its name in the clients file, a certificate identity, or
    ``anonymous``. Bounded by the operator's configuration (a metrics label)."""
    policy: Policy


class Authenticator:
    def __init__(
        self,
        clients: ClientsFile | None,
        *,
        required: bool,
        certificates: bool,
        on_reload: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._clients = clients
        self._required = required
        self._certificates = certificates
        """Client certificates are verified by TLS (a client CA is configured)."""
        self._on_reload = on_reload
        self._seen: ClientRegistry | None = None
        self._empty = ClientRegistry.empty()

    def _registry(self) -> ClientRegistry:
        registry = self._clients.current() if self._clients else self._empty
        if registry is not self._seen:  # the file was (re)loaded: tell who may call now
            self._seen = registry
            if self._on_reload is not None:
                self._on_reload(registry.clients)
        return registry

    def named(self, client: str) -> Caller:
        """The caller ``client`` as the clients file says now (a job starting long after
        its submit runs under its client's current policy); a client the file no
        longer names (or an anonymous or certificate-only one) gets the defaults."""
        registry = self._registry()
        known = registry.get(client)
        return Caller(client, known.policy if known is not None else registry.defaults)

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        registry = self._registry()
        authorization = _metadata(context, "authorization")
        if authorization is not None:
            token = from_authorization(authorization)
            client = registry.by_token(token) if token is not None else None
            if client is None:
                raise Unauthenticated(_INVALID)
            return Caller(client.id, client.policy)
        if self._certificates:
            identity = peer_identity(context.auth_context())
            if identity is not None:
                known = registry.by_identity(identity)
                if known is not None:
                    return Caller(known.id, known.policy)
                if self._clients is None:
                    # mTLS alone: any certificate the CA signed names its own client.
                    return Caller(identity, registry.defaults)
                if self._required:
                    raise Unauthenticated(_INVALID)
        if self._required:
            raise Unauthenticated(_MISSING)
        return Caller(ANONYMOUS, registry.defaults)


def _metadata(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else None
    return None
