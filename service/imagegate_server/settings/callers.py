"""Settings of who may call: authentication, the clients file, and TLS (with client
certificates)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class CallersSettings(BaseModel):
    """Caller authentication, the clients file and the server's TLS."""

    auth: Literal["auto", "none"] = "auto"
    """Caller authentication. ``auto``: with a clients file (or a client CA) every call
    must authenticate, by bearer token or client-certificate identity; without one,
    calls are anonymous, which ``serve`` allows only in emulator mode or on a
    loopback bind. ``none``: anonymous callers on purpose, even with a real key on a
    public bind (for a gateway behind an authenticating proxy)."""
    clients_file: Path | None = None
    """The clients file (TOML or YAML, by extension): tokens, certificate identities
    and per-client policy; see docs/clients.example.toml. Re-read when it changes."""
    clients_reload_s: float = Field(default=2.0, gt=0)
    """How often the clients file is checked for changes (a ``stat``, no read)."""

    tls_cert_file: Path | None = None
    """Server certificate chain (PEM); with ``tls_key_file``, the gateway serves TLS."""
    tls_key_file: Path | None = None
    """Private key (PEM, unencrypted) of ``tls_cert_file``; set both or neither."""
    tls_client_ca_file: Path | None = None
    """CA bundle (PEM) for client certificates: when set, every connection must
    present a certificate it signed (mTLS), and its identity can name a client."""
    tls_reload_s: float = Field(default=5.0, ge=0)
    """How often, at most, a new TLS handshake checks the certificate files for
    changes (rotation without restart); 0 checks on every handshake."""
