"""Secure by default: when ``serve`` must refuse to start without caller authentication."""

from __future__ import annotations

import ipaddress

from imagegate_server.settings import Settings


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine:
    ``localhost``, 127.0.0.0/8 or ::1 (a bracketed ``[::1]`` too). Anything else,
    including other host names and the wildcard addresses, counts as reachable."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def startup_auth_problem(settings: Settings, *, real_key: bool) -> str | None:
    """The one-line refusal for a start-up that would let anyone spend the key, or None.

    Refused: a real OpenAI key, a bind reachable from other machines, and neither a
    clients file (tokens) nor a client CA (mTLS), unless ``IMAGEGATE_AUTH=none``
    says so explicitly. The emulator (no key) and loopback binds need nothing.
    """
    if not real_key or settings.auth == "none" or is_loopback(settings.host):
        return None
    if settings.clients_file is not None or settings.tls_client_ca_file is not None:
        return None
    return (
        f"refusing to serve the OpenAI key to anyone who reaches {settings.host[:100]!r} "
        "without caller authentication: set IMAGEGATE_CLIENTS_FILE (tokens) or "
        "IMAGEGATE_TLS_CLIENT_CA_FILE (client certificates), bind a loopback address, "
        "or set IMAGEGATE_AUTH=none to serve anonymous callers on purpose"
    )
