"""The gateway over TLS and mTLS: the certificate's identity names the client."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from tenancy_support import ClientsFile, bearer
from tls.tls_support import CertificateAuthority, Issued

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway

SPIFFE = "spiffe://example.org/ns/team-a/sa/renderer"
REQUEST = pb.CreateImageRequest(
    parameters=params_pb2.GenerationParameters(prompt="a cat", model="gpt-image-2")
)


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority()


async def start_mtls(
    start_gateway: GatewayFactory, tmp_path: Path, ca: CertificateAuthority, **settings: object
) -> Gateway:
    cert, key = ca.server().write(tmp_path, "server")
    client_ca = tmp_path / "ca.crt"
    client_ca.write_bytes(ca.cert_pem)
    return await start_gateway(
        tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=client_ca, **settings
    )


async def call(
    gateway: Gateway,
    ca: CertificateAuthority,
    client: Issued | None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> pb.CreateImageResponse:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{gateway.port}", credentials) as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        return await stub.CreateImage(REQUEST, metadata=metadata, timeout=30)


async def test_a_listed_certificate_identity_is_its_client(
    start_gateway: GatewayFactory, emulator: Emulator, tmp_path: Path, ca: CertificateAuthority
) -> None:
    clients = ClientsFile(tmp_path / "clients.toml")
    clients.add("renderer", identities=[SPIFFE])
    gateway = await start_mtls(start_gateway, tmp_path, ca, clients_file=clients.path)
    await call(gateway, ca, ca.issue("renderer", uris=(SPIFFE,), dns=("renderer.team-a.svc",)))
    (entry,) = emulator.journal.entries
    assert entry.json["safety_identifier"] == "renderer"


async def test_an_unlisted_certificate_is_refused_even_though_the_ca_signed_it(
    start_gateway: GatewayFactory, emulator: Emulator, tmp_path: Path, ca: CertificateAuthority
) -> None:
    clients = ClientsFile(tmp_path / "clients.toml")
    token = clients.add("renderer", identities=[SPIFFE])
    gateway = await start_mtls(start_gateway, tmp_path, ca, clients_file=clients.path)
    stranger = ca.issue("stranger", dns=("stranger.example.org",))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(gateway, ca, stranger)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # A token identifies its client over any connection the CA admits.
    await call(gateway, ca, stranger, bearer(token))
    assert [e.json["safety_identifier"] for e in emulator.journal.entries] == ["renderer"]


async def test_without_a_clients_file_the_certificate_names_its_own_client(
    start_gateway: GatewayFactory, emulator: Emulator, tmp_path: Path, ca: CertificateAuthority
) -> None:
    gateway = await start_mtls(start_gateway, tmp_path, ca)
    await call(gateway, ca, ca.issue("worker", dns=("worker.team-b.svc",)))
    (entry,) = emulator.journal.entries
    assert entry.json["safety_identifier"] == "worker.team-b.svc"


async def test_a_client_without_a_certificate_cannot_connect(
    start_gateway: GatewayFactory, emulator: Emulator, tmp_path: Path, ca: CertificateAuthority
) -> None:
    gateway = await start_mtls(start_gateway, tmp_path, ca)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(gateway, ca, None)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert emulator.journal.entries == []


async def test_plain_tls_serves_token_callers(
    start_gateway: GatewayFactory, tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert, key = ca.server().write(tmp_path, "server")
    clients = ClientsFile(tmp_path / "clients.toml")
    token = clients.add("team-a")
    gateway = await start_gateway(tls_cert_file=cert, tls_key_file=key, clients_file=clients.path)
    reply = await call(gateway, ca, None, bearer(token))
    assert len(reply.result.images) == 1
