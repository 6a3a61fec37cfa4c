"""The aiohttp-backed httpx transport, against a raw HTTP/1.1 server on 127.0.0.1.

The server is asyncio's own (no aiohttp on its side), so what it records is what
went over the socket: the headers sent, the body's framing, how many connections.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tls.tls_support import CertificateAuthority  # tests/ is on sys.path (its conftest)

from imagegate_server.upstream.transport import AiohttpTransport

# What the server does with a request it has read: write bytes, or close, or stall.
Respond = Callable[[asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Seen:
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0


StartServer = Callable[..., Awaitable[tuple[str, "Seen"]]]


def _answer(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"content-type: application/json", *extra]
    head.append(b"content-length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), 0
    )
    return head, await reader.readexactly(length)


@pytest.fixture
async def server() -> AsyncIterator[StartServer]:
    servers: list[asyncio.Server] = []

    async def start(respond: Respond, tls: ssl.SSLContext | None = None) -> tuple[str, Seen]:
        seen = Seen()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.connections += 1
            try:
                while True:
                    head, body = await _read_request(reader)
                    seen.heads.append(head)
                    seen.bodies.append(body)
                    await respond(writer, body)
                    if writer.is_closing():
                        return
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        servers.append(listener)
        port = listener.sockets[0].getsockname()[1]
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{port}/v1/images/generations", seen

    yield start
    for listener in servers:
        listener.close()


MakeTransport = Callable[..., AiohttpTransport]


@pytest.fixture
async def transports() -> AsyncIterator[MakeTransport]:
    """``transports(max_connections=8)``: a transport, closed when the test ends (made
    inside the test, so that environment it reads, such as SSL_CERT_FILE, is set first)."""
    made: list[AiohttpTransport] = []

    def make(max_connections: int = 8) -> AiohttpTransport:
        made.append(AiohttpTransport(max_connections, 30.0))
        return made[-1]

    yield make
    for transport in made:
        await transport.aclose()


async def _ok(writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(_answer(b'{"data": []}'))
    await writer.drain()


async def _post(transport: AiohttpTransport, url: str, **kwargs: object) -> httpx.Response:
    request = httpx.Request("POST", url, **kwargs)  # type: ignore[arg-type]
    response = await transport.handle_async_request(request)
    await response.aread()
    await response.aclose()
    return response


async def test_requests_reuse_one_keep_alive_connection(
    server: StartServer, transports: MakeTransport
) -> None:
    url, seen = await server(_ok)
    transport = transports()
    for _ in range(3):
        response = await _post(transport, url, json={"prompt": "x"})
        assert response.status_code == 200
        assert response.json() == {"data": []}
    assert seen.connections == 1
    assert seen.bodies == [b'{"prompt":"x"}'] * 3


async def test_only_the_requests_own_headers_are_sent(
    server: StartServer, transports: MakeTransport
) -> None:
    url, seen = await server(_ok)
    transport = transports()
    await _post(
        transport,
        url,
        json={},
        headers={"authorization": "Bearer k", "user-agent": "imagegate/t"},
    )
    head = seen.heads[0].lower()
    assert b"user-agent: imagegate/t\r\n" in head
    assert b"authorization: bearer k\r\n" in head
    # Nothing of aiohttp's own: no content coding asked for, no second user agent.
    assert b"accept-encoding" not in head and b"aiohttp" not in head and b"cookie" not in head


async def test_a_multipart_body_is_streamed_with_its_length(
    server: StartServer, transports: MakeTransport
) -> None:
    url, seen = await server(_ok)
    image = bytes(range(256)) * 2048  # 512 KiB: more than one chunk of httpx's stream
    request = httpx.Request(
        "POST", url, data={"prompt": "x"}, files={"image": ("a.png", image, "image/png")}
    )
    transport = transports()
    await (await transport.handle_async_request(request)).aread()
    head = seen.heads[0].lower()
    assert b"transfer-encoding" not in head
    assert b"content-length: %d\r\n" % len(seen.bodies[0]) in head
    assert seen.bodies[0] == b"".join([part async for part in request.stream])  # type: ignore[union-attr]


async def test_a_compressed_answer_is_decoded_by_httpx(
    server: StartServer, transports: MakeTransport
) -> None:
    async def gzipped(writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.write(_answer(gzip.compress(b'{"data": [1]}'), b"content-encoding: gzip"))
        await writer.drain()

    url, _ = await server(gzipped)
    transport = transports()
    assert (await _post(transport, url, json={})).json() == {"data": [1]}


async def test_an_answer_left_unread_closes_its_connection(
    server: StartServer, transports: MakeTransport
) -> None:
    async def large(writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.write(_answer(b"x" * (4 * 1024 * 1024)))
        await writer.drain()

    url, seen = await server(large)
    transport = transports()
    for _ in range(2):
        response = await transport.handle_async_request(httpx.Request("POST", url, json={}))
        await response.aclose()  # a stream the caller broke off
    assert seen.connections == 2  # the half-read connection was not handed to the next call


async def test_a_refused_connection_is_a_connect_error(transports: MakeTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        transport = transports()
        with pytest.raises(httpx.ConnectError):
            await _post(transport, f"http://127.0.0.1:{port}/v1", json={})


async def test_a_connection_closed_before_the_answer_may_have_reached_the_upstream(
    server: StartServer, transports: MakeTransport
) -> None:
    async def hang_up(writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.close()

    url, seen = await server(hang_up)
    transport = transports()
    with pytest.raises(httpx.TransportError) as raised:
        await _post(transport, url, json={})
    # Not a connect error: the request was sent, so it must not be retried.
    assert not isinstance(raised.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert seen.bodies == [b"{}"]


async def test_an_upstream_that_stops_mid_answer_is_a_read_error(
    server: StartServer, transports: MakeTransport
) -> None:
    async def cut(writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.write(_answer(b"x" * 1000)[:-500])
        await writer.drain()
        writer.close()

    url, _ = await server(cut)
    transport = transports()
    with pytest.raises(httpx.ReadError):
        await _post(transport, url, json={})


async def test_a_silent_upstream_is_a_read_timeout(
    server: StartServer, transports: MakeTransport
) -> None:
    async def stall(writer: asyncio.StreamWriter, body: bytes) -> None:
        await asyncio.sleep(5)

    url, _ = await server(stall)
    timeout = httpx.Timeout(0.2, connect=1.0).as_dict()
    transport = transports()
    with pytest.raises(httpx.ReadTimeout):
        await _post(transport, url, json={}, extensions={"timeout": timeout})


async def test_a_full_pool_waits_then_times_out_as_a_connect_timeout(
    server: StartServer, transports: MakeTransport
) -> None:
    release = asyncio.Event()

    async def held(writer: asyncio.StreamWriter, body: bytes) -> None:
        await release.wait()
        await _ok(writer, body)

    url, _ = await server(held)
    timeout = httpx.Timeout(5.0, pool=0.2).as_dict()
    transport = transports(1)
    try:
        first = asyncio.ensure_future(_post(transport, url, json={}))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.ConnectTimeout):  # nothing was sent: safe to retry
            await _post(transport, url, json={}, extensions={"timeout": timeout})
        release.set()
        assert (await first).status_code == 200
    finally:
        release.set()  # the held answer, so the transport closes at once


def _tls_server_context(ca: CertificateAuthority, tmp_path: Path) -> ssl.SSLContext:
    cert, key = ca.server().write(tmp_path, "upstream")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_an_upstream_certificate_from_a_trusted_ca_is_accepted(
    server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transports: MakeTransport
) -> None:
    ca = CertificateAuthority()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # as httpx reads it
    url, seen = await server(_ok, _tls_server_context(ca, tmp_path))
    transport = transports()
    assert (await _post(transport, url, json={})).status_code == 200
    assert seen.bodies == [b"{}"]


async def test_an_upstream_certificate_from_an_unknown_ca_is_a_connect_error(
    server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transports: MakeTransport
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # certifi's CAs: not the test's
    url, seen = await server(_ok, _tls_server_context(CertificateAuthority(), tmp_path))
    transport = transports()
    with pytest.raises(httpx.ConnectError):  # nothing was sent: safe to retry
        await _post(transport, url, json={})
    assert seen.bodies == []
