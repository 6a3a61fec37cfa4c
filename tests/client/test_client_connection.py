"""Connection flags: the bearer token, TLS and mTLS, against a real grpc.aio server.

The server requires client certificates issued by the test's own CA, as a gateway
configured for mTLS does (the gateway itself cannot be configured with TLS yet, so a
tiny ImagesService stands in for it: it records what arrived and answers with one
image). The client under test is the real CLI, run through ``imagegate_server.cli.main``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2, images_service_pb2_grpc, results_pb2
from support.images import png
from tls.tls_support import CertificateAuthority, Issued  # tests/ is on sys.path (its conftest)

from imagegate_server.cli import main
from imagegate_server.client.connection import port_tried

IMAGE = png(24, 24)
TOKEN = "igk_ci_0123456789abcdefSECRET"


@dataclass
class Seen:
    authorization: list[str | None] = field(default_factory=list)
    peers: list[list[bytes]] = field(default_factory=list)
    """The DNS names of each call's client certificate, from the TLS session."""


class Servicer(images_service_pb2_grpc.ImagesServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def CreateImageStream(  # type: ignore[override]
        self,
        request: images_service_pb2.CreateImageStreamRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[images_service_pb2.CreateImageStreamResponse]:
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        self.seen.authorization.append(str(authorization) if authorization else None)
        self.seen.peers.append(
            list(context.auth_context().get("x509_subject_alternative_name", []))
        )
        if request.parameters.prompt == "echo":
            # What a careless proxy might do: quote the caller's header in its error.
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"bad header {authorization}")
        yield images_service_pb2.CreateImageStreamResponse(
            image_chunk=results_pb2.ImageChunk(image_index=0, offset=0, data=IMAGE, last=True)
        )
        yield images_service_pb2.CreateImageStreamResponse(
            result=results_pb2.ImagesResult(created=1, images=[results_pb2.GeneratedImage()])
        )


@dataclass(frozen=True)
class Files:
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    ca_path: Path
    server: Issued
    """For 127.0.0.1 and localhost."""
    client: Files
    """A client identity (DNS SAN ``cli.imagegate.test``) issued by the same CA."""
    stranger: Files
    """A client certificate from another CA, which the server must refuse."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority()
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.cert_pem)
    client = ca.issue("cli", dns=("cli.imagegate.test",)).write(directory, "client")
    stranger = CertificateAuthority("another CA").issue("stranger", dns=("x.test",))
    return Pki(
        ca.cert_pem,
        ca_path,
        ca.server(),
        Files(*client),
        Files(*stranger.write(directory, "stranger")),
    )


@pytest.fixture(scope="module")
async def mtls(pki: Pki) -> AsyncIterator[tuple[str, Seen]]:
    """A server that requires a client certificate from the test CA."""
    seen = Seen()
    server = grpc.aio.server()
    images_service_pb2_grpc.add_ImagesServiceServicer_to_server(Servicer(seen), server)
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key_pem, pki.server.cert_pem)],
        root_certificates=pki.ca_pem,
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield f"127.0.0.1:{port}", seen
    await server.stop(None)


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    # The CLI runs its own event loop (asyncio.run), so it gets a thread while the
    # test server keeps serving on this one.
    try:
        code = await asyncio.to_thread(main, argv)
    except SystemExit as exit_info:  # usage errors exit through argparse
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _generate(target: str, out: Path, *flags: str) -> list[str]:
    return ["generate", "a fox", "-o", str(out), "--target", target, "--timeout", "20", *flags]


async def test_client_certificate_and_token_reach_the_server(
    mtls: tuple[str, Seen], pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, seen = mtls
    flags = ["--ca-cert", str(pki.ca_path), "--cert", str(pki.client.cert_path)]
    flags += ["--key", str(pki.client.key_path), "--token", TOKEN]  # no --tls: implied
    code, out, err = await run_cli(_generate(target, tmp_path / "fox.png", *flags), capsys)
    assert code == 0, err
    assert (tmp_path / "fox.png").read_bytes() == IMAGE
    assert out == f"{tmp_path / 'fox.png'}\n"
    assert seen.authorization[-1] == f"Bearer {TOKEN}"
    assert seen.peers[-1] == [b"cli.imagegate.test"]  # the server saw our certificate
    assert TOKEN not in err


async def test_token_from_the_environment(
    mtls: tuple[str, Seen],
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, seen = mtls
    monkeypatch.setenv("IMAGEGATE_TOKEN", TOKEN)
    flags = ["--ca-cert", str(pki.ca_path), "--cert", str(pki.client.cert_path)]
    code, _, err = await run_cli(
        _generate(target, tmp_path / "x.png", *flags, "--key", str(pki.client.key_path)), capsys
    )
    assert code == 0, err
    assert seen.authorization[-1] == f"Bearer {TOKEN}"


async def test_without_a_client_certificate_the_call_fails_in_one_line(
    mtls: tuple[str, Seen], pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, _ = mtls
    code, out, err = await run_cli(
        _generate(target, tmp_path / "x.png", "--ca-cert", str(pki.ca_path), "--token", TOKEN),
        capsys,
    )
    assert code == 1
    assert out == ""
    # gRPC reports the closed socket as "failed to connect" (or, racing the close, as a
    # reset); either way the line names the likely cause.
    assert err.count("\n") == 1
    assert err.startswith(f"imagegate: UNAVAILABLE: could not reach {target} (")
    assert err.endswith(
        "; the gateway closed the TLS connection: it may require a client certificate (--cert)\n"
    )
    assert not (tmp_path / "x.png").exists()


async def test_a_certificate_from_another_ca_is_refused(
    mtls: tuple[str, Seen], pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, _ = mtls
    flags = ["--ca-cert", str(pki.ca_path), "--cert", str(pki.stranger.cert_path)]
    code, _, err = await run_cli(
        _generate(target, tmp_path / "x.png", *flags, "--key", str(pki.stranger.key_path)), capsys
    )
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"imagegate: UNAVAILABLE: could not reach {target}")
    assert err.rstrip().endswith("it may not accept this --cert")


async def test_the_system_cas_do_not_trust_a_private_ca(
    mtls: tuple[str, Seen], pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, _ = mtls
    flags = ["--tls", "--cert", str(pki.client.cert_path), "--key", str(pki.client.key_path)]
    code, _, err = await run_cli(_generate(target, tmp_path / "x.png", *flags), capsys)
    assert code == 1
    assert err == f"imagegate: UNAVAILABLE: could not reach {target} (TLS handshake failed)\n"


@pytest.mark.parametrize("given", ["--cert", "--key"])
async def test_cert_and_key_go_together(
    given: str, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pki.client.cert_path if given == "--cert" else pki.client.key_path
    code, out, err = await run_cli(
        _generate("127.0.0.1:1", tmp_path / "x.png", given, str(path)), capsys
    )
    assert code == 2
    assert out == ""
    assert err == (
        "imagegate: error: --cert and --key go together: give both or neither "
        "(see imagegate generate --help)\n"
    )


async def test_an_unreadable_key_is_one_line(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.key"
    flags = ["--cert", str(pki.client.cert_path), "--key", str(missing)]
    code, _, err = await run_cli(_generate("127.0.0.1:1", tmp_path / "x.png", *flags), capsys)
    assert code == 1
    assert err == f"imagegate: cannot read {missing}: No such file or directory\n"


async def test_files_that_are_not_pem_are_named(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a certificate")
    cert, key = pki.client.cert_path, pki.client.key_path
    cases = [
        (["--ca-cert", str(notes)], notes, "certificate"),
        (["--cert", str(notes), "--key", str(key)], notes, "certificate"),
        (["--cert", str(cert), "--key", str(cert)], cert, "private key"),  # a classic swap
    ]
    for flags, culprit, what in cases:
        code, _, err = await run_cli(_generate("127.0.0.1:1", tmp_path / "x.png", *flags), capsys)
        assert code == 1, flags
        assert err == f"imagegate: {culprit} holds no PEM {what}\n"


@pytest.mark.parametrize("token", ["line\nbreak", "tökén", "two words"])
async def test_a_token_that_cannot_be_a_header_is_a_usage_error(
    token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run_cli(
        _generate("127.0.0.1:1", tmp_path / "x.png", "--token", token), capsys
    )
    assert code == 2
    assert err == (
        "imagegate: error: the token (--token or $IMAGEGATE_TOKEN) may hold only "
        "visible ASCII characters (see imagegate generate --help)\n"
    )
    assert token not in err


async def test_a_token_quoted_back_by_the_server_is_not_printed(
    mtls: tuple[str, Seen], pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No real gateway quotes the header; this server does, to prove the CLI's guard.
    target, seen = mtls
    argv = [
        "generate", "echo", "-o", str(tmp_path / "x.png"), "--target", target,
        "--ca-cert", str(pki.ca_path), "--cert", str(pki.client.cert_path),
        "--key", str(pki.client.key_path), "--token", TOKEN,
    ]  # fmt: skip
    code, _, err = await run_cli(argv, capsys)
    assert code == 1
    assert seen.authorization[-1] == f"Bearer {TOKEN}"
    assert err == "imagegate: UNAUTHENTICATED: bad header Bearer [token]\n"


@pytest.mark.parametrize(
    ("target", "port"),
    [
        ("myhost", 443),
        ("myhost:50051", None),
        ("10.0.0.1", 443),
        ("10.0.0.1:8443", None),
        ("::1", 443),  # a bare IPv6 address has no port
        ("[::1]", 443),
        ("[::1]:50051", None),
        ("dns:///myhost", 443),
        ("dns://8.8.8.8/myhost:50051", None),
        ("dns:myhost", 443),
        ("ipv4:10.0.0.1:50051,10.0.0.2:50051", None),
        ("ipv4:10.0.0.1", 443),
        ("unix:/run/imagegate.sock", None),
    ],
)
def test_the_port_grpc_falls_back_to(target: str, port: int | None) -> None:
    assert port_tried(target) == port
