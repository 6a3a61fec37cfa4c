"""TLS and mTLS on a real grpc.aio server, with certificates the test makes."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tls_support import CertificateAuthority, Issued, common_name_of

from imagegate_server.errors import StartupError
from imagegate_server.settings import Settings
from imagegate_server.tls import ServerCertificates, peer_identity, server_credentials

WHO = "/imagegate.test.Identity/Who"
TIMEOUT_S = 10


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    identity = peer_identity(context.auth_context())
    return b"<none>" if identity is None else identity.encode()


@asynccontextmanager
async def serving(credentials: grpc.ServerCredentials) -> AsyncIterator[int]:
    """A real server on 127.0.0.1:0 with health and an identity echo; yields its port."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    identity = grpc.method_handlers_generic_handler(
        "imagegate.test.Identity",
        {"Who": grpc.unary_unary_rpc_method_handler(_who)},
    )
    server.add_generic_rpc_handlers((identity,))
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def channel_credentials(ca: CertificateAuthority, client: Issued | None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.cert_pem)
    return grpc.ssl_channel_credentials(ca.cert_pem, client.key_pem, client.cert_pem)


async def who_am_i(port: int, credentials: grpc.ChannelCredentials) -> str:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        reply = await channel.unary_unary(WHO)(b"", timeout=TIMEOUT_S)
        assert isinstance(reply, bytes)
        return reply.decode()


async def health_check(port: int, credentials: grpc.ChannelCredentials) -> int:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
        status: int = reply.status
        return status


def presented_common_name(port: int, ca: CertificateAuthority, client: Issued, tmp: Path) -> str:
    """The CN of the certificate the server presents to a brand-new TLS connection."""
    cert, key = client.write(tmp, "probe-client")
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return common_name_of(ssl.DER_cert_to_PEM_cert(der).encode())


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
def mtls_files(tmp_path: Path, ca: CertificateAuthority) -> tuple[Path, Path, Path]:
    cert, key = ca.server("server one").write(tmp_path, "server")
    ca_file = tmp_path / "clients-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return cert, key, ca_file


async def test_mtls_requires_a_client_certificate_signed_by_the_client_ca(
    ca: CertificateAuthority, mtls_files: tuple[Path, Path, Path]
) -> None:
    certificates = ServerCertificates(*mtls_files, reload_s=0)
    async with serving(certificates.credentials()) as port:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_check(port, channel_credentials(ca, None))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        stranger = CertificateAuthority("another CA").issue("x", dns=("x.example",))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_check(
                port, grpc.ssl_channel_credentials(ca.cert_pem, stranger.key_pem, stranger.cert_pem)
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        client = ca.issue("renderer", dns=("renderer.example",))
        serving_status = health_pb2.HealthCheckResponse.SERVING
        assert await health_check(port, channel_credentials(ca, client)) == serving_status


async def test_peer_identity_is_the_spiffe_id_else_the_first_dns_san(
    ca: CertificateAuthority, mtls_files: tuple[Path, Path, Path]
) -> None:
    certificates = ServerCertificates(*mtls_files, reload_s=0)
    spiffe = ca.issue(
        "renderer",
        uris=("spiffe://example.org/ns/team-a/sa/renderer",),
        dns=("renderer.team-a.svc",),
    )
    dns_only = ca.issue("batch", dns=("batch.jobs.svc", "batch.other.svc"))
    two_uris = ca.issue("odd", uris=("spiffe://example.org/a", "spiffe://example.org/b"))
    cn_only = ca.issue("only-a-common-name")
    async with serving(certificates.credentials()) as port:
        assert await who_am_i(port, channel_credentials(ca, spiffe)) == (
            "spiffe://example.org/ns/team-a/sa/renderer"
        )
        assert await who_am_i(port, channel_credentials(ca, dns_only)) == "batch.jobs.svc"
        # Two URI SANs is no SPIFFE ID; the CN is never an identity.
        assert await who_am_i(port, channel_credentials(ca, two_uris)) == "<none>"
        assert await who_am_i(port, channel_credentials(ca, cn_only)) == "<none>"


async def test_tls_without_a_client_ca_needs_no_client_certificate(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert, key = ca.server().write(tmp_path, "server")
    settings = Settings(_env_file=None, tls_cert_file=cert, tls_key_file=key)  # type: ignore[call-arg]
    credentials = server_credentials(settings)
    assert credentials is not None
    async with serving(credentials) as port:
        assert await who_am_i(port, channel_credentials(ca, None)) == "<none>"
        # A plaintext client cannot talk to it.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary(WHO)(b"", timeout=TIMEOUT_S)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_rotated_certificate_files_are_presented_to_the_next_connection(
    tmp_path: Path, ca: CertificateAuthority, mtls_files: tuple[Path, Path, Path]
) -> None:
    cert_file, key_file, ca_file = mtls_files
    certificates = ServerCertificates(cert_file, key_file, ca_file, reload_s=0)
    client = ca.issue("renderer", dns=("renderer.example",))
    credentials = channel_credentials(ca, client)
    async with (
        serving(certificates.credentials()) as port,
        grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as kept,
    ):
        assert presented_common_name(port, ca, client, tmp_path) == "server one"
        assert await kept.unary_unary(WHO)(b"", timeout=TIMEOUT_S) == b"renderer.example"

        # Rotate like cert-manager: a new key and certificate, new CN, no restart.
        rotated = ca.server("server two")
        rotated.write(tmp_path, "server")
        assert presented_common_name(port, ca, client, tmp_path) == "server two"
        assert await who_am_i(port, credentials) == "renderer.example"
        # The connection opened before the rotation keeps working.
        assert await kept.unary_unary(WHO)(b"", timeout=TIMEOUT_S) == b"renderer.example"


async def test_a_bad_new_pair_keeps_the_old_one_and_logs_once(
    tmp_path: Path,
    ca: CertificateAuthority,
    mtls_files: tuple[Path, Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert_file, key_file, ca_file = mtls_files
    certificates = ServerCertificates(cert_file, key_file, ca_file, reload_s=0)
    client = ca.issue("renderer", dns=("renderer.example",))
    async with serving(certificates.credentials()) as port:
        # A new certificate with the old key: the pair does not match.
        cert_file.write_bytes(ca.server("mismatched").cert_pem)
        with caplog.at_level(logging.ERROR, logger="imagegate_server.tls"):
            for _ in range(3):
                assert presented_common_name(port, ca, client, tmp_path) == "server one"
        errors = [r for r in caplog.records if r.name == "imagegate_server.tls"]
        assert len(errors) == 1
        assert "not reloaded" in errors[0].getMessage()
        assert "BEGIN" not in errors[0].getMessage()
        ca.server("server three").write(tmp_path, "server")
        assert presented_common_name(port, ca, client, tmp_path) == "server three"


def test_files_are_checked_at_most_every_reload_interval(
    tmp_path: Path, ca: CertificateAuthority, mtls_files: tuple[Path, Path, Path]
) -> None:
    now = [100.0]
    certificates = ServerCertificates(*mtls_files, reload_s=5, clock=lambda: now[0])
    assert certificates.fetch() is None  # nothing changed
    ca.server("server two").write(tmp_path, "server")
    now[0] += 4.9
    assert certificates.fetch() is None  # too soon to look
    now[0] += 0.2
    assert isinstance(certificates.fetch(), grpc.ServerCertificateConfiguration)
    now[0] += 10
    assert certificates.fetch() is None  # unchanged since


def settings_with(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_no_tls_settings_means_plaintext() -> None:
    assert server_credentials(settings_with()) is None


def test_start_up_problems_are_one_line(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert, key = ca.server().write(tmp_path, "server")
    other_cert, _ = ca.server().write(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    encrypted = tmp_path / "encrypted.key"
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tls_cert_file": cert}, "set both or neither"),
        ({"tls_key_file": key}, "set both or neither"),
        ({"tls_client_ca_file": cert}, "needs IMAGEGATE_TLS_CERT_FILE"),
        ({"tls_cert_file": tmp_path / "none.crt", "tls_key_file": key}, "cannot read"),
        ({"tls_cert_file": other_cert, "tls_key_file": key}, "KEY_VALUES_MISMATCH"),
        ({"tls_cert_file": garbage, "tls_key_file": key}, "must be a PEM certificate chain"),
        ({"tls_cert_file": cert, "tls_key_file": encrypted}, "the key is encrypted"),
        (
            {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": garbage},
            "no PEM certificate",
        ),
    ]
    for values, expected in cases:
        with pytest.raises(StartupError) as caught:
            server_credentials(settings_with(**values))
        message = str(caught.value)
        assert expected in message, (values, message)
        assert "\n" not in message and "BEGIN" not in message


def test_peer_identity_rules_on_auth_context_values() -> None:
    assert peer_identity({}) is None
    assert peer_identity({"transport_security_type": [b"ssl"]}) is None
    assert peer_identity({"peer_spiffe_id": [b"spiffe://td/x"], "peer_dns": [b"a.b"]}) == (
        "spiffe://td/x"
    )
    assert peer_identity({"peer_dns": [b"\xff", b"b.example"]}) == "b.example"
    assert peer_identity({"peer_spiffe_id": [b"spiffe://td/x", b"spiffe://td/y"]}) is None
