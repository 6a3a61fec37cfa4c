"""How the client reaches the gateway: target, deadline, bearer token, TLS and mTLS.

The token travels as ``authorization: Bearer <token>`` metadata, the form the
gateway's authentication reads. It is a credential: it stays out of this class's
repr and out of every line the CLI prints (see :func:`.command.run`), since error
lines and progress end up in CI logs. ``--tls`` checks the gateway's certificate
against the system CAs, ``--ca-cert`` against a private CA, and ``--cert``/``--key``
present a client certificate to gateways that require one (mTLS); each implies TLS.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from imagegate_server.client.errors import describe_rpc_error
from imagegate_server.client.options import UsageError
from imagegate_server.client.parsers import DEFAULT_TARGET

GRPC_DEFAULT_PORT = 443
"""The port gRPC connects to when a target names none (for names and addresses alike)."""
_SCHEMES_WITHOUT_PORTS = ("unix:", "unix-abstract:", "vsock:")


def port_tried(target: str) -> int | None:
    """The port gRPC falls back to for ``target``, or None when the target names one.

    ``--target myhost`` connects to myhost:443, not to the gateway's 50051: an error
    that says only "could not reach myhost" leaves the user guessing.
    """
    if target.startswith(_SCHEMES_WITHOUT_PORTS):
        return None
    address = target
    if address.startswith("dns:"):
        address = address.removeprefix("dns:")
        if address.startswith("//"):  # dns://[authority]/host[:port]
            address = address[2:].partition("/")[2]
    elif address.startswith(("ipv4:", "ipv6:")):
        address = address[5:].split(",")[0]
    if address.startswith("["):  # [v6 address], with a port after "]:"
        return None if "]:" in address else GRPC_DEFAULT_PORT
    # One colon: host:port. None: no port. More: a bare IPv6 address, no port.
    return None if address.count(":") == 1 else GRPC_DEFAULT_PORT


class CredentialsError(Exception):
    """A certificate or key file that cannot be read (exit code 1)."""


@dataclass(frozen=True)
class Connection:
    target: str
    timeout: float
    token: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_cert: bytes | None = None
    client_cert: bytes | None = None
    """PEM certificate chain presented to the gateway (mTLS)."""
    client_key: bytes | None = field(default=None, repr=False)

    @property
    def port_tried(self) -> int | None:
        """The port gRPC tries because the target names none (see :func:`port_tried`)."""
        return port_tried(self.target)

    @property
    def secure(self) -> bool:
        return self.tls or self.ca_cert is not None or self.client_cert is not None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def describe_failure(self, error: grpc.aio.AioRpcError) -> str:
        """The line a command prints for a call that failed on this connection (it may
        quote a server's text: pass it through :func:`.command.fail`, which redacts)."""
        return describe_rpc_error(
            error,
            target=self.target,
            timeout=self.timeout,
            token_given=self.token is not None,
            tls=self.secure,
            client_certificate=self.client_cert is not None,
            port_tried=self.port_tried,
        )

    def channel(self) -> grpc.aio.Channel:
        if self.secure:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.ca_cert,
                private_key=self.client_key,
                certificate_chain=self.client_cert,
            )
            return grpc.aio.secure_channel(self.target, credentials)
        return grpc.aio.insecure_channel(self.target)


def _valid_token(token: str) -> bool:
    # HTTP/2 header values: visible ASCII. gRPC would otherwise fail the call with
    # "Invalid metadata" after logging a core error; a bearer token has no spaces.
    return all("!" <= char <= "~" for char in token)


def _read_pem(path: Path | None, marker: bytes, what: str) -> bytes | None:
    # gRPC takes any bytes and fails only when it connects, with core log lines and
    # a status that blames the network; checking the PEM label here names the file.
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CredentialsError(f"cannot read {path}: {error.strerror or error}") from None
    if marker not in data:
        raise CredentialsError(f"{path} holds no PEM {what}")
    return data


def connection_from(args: argparse.Namespace) -> Connection:
    """The connection options of a client command, with their environment defaults.

    Raises UsageError for a combination that cannot work, CredentialsError for a
    file that cannot be read.
    """
    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together: give both or neither")
    token = args.token or os.environ.get("IMAGEGATE_TOKEN") or None
    if token is not None and not _valid_token(token):
        # Never echo it: the value is a secret even when it is malformed.
        raise UsageError(
            "the token (--token or $IMAGEGATE_TOKEN) may hold only visible ASCII characters"
        )
    return Connection(
        target=args.target or os.environ.get("IMAGEGATE_TARGET") or DEFAULT_TARGET,
        timeout=args.timeout,
        token=token,
        tls=args.tls,
        ca_cert=_read_pem(args.ca_cert, b"-----BEGIN CERTIFICATE-----", "certificate"),
        client_cert=_read_pem(args.cert, b"-----BEGIN CERTIFICATE-----", "certificate"),
        client_key=_read_pem(args.key, b"PRIVATE KEY-----", "private key"),
    )
