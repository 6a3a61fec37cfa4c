"""Downloading URL results, against a real HTTP server on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from support.images import png

from imagegate_server.client.fetch import MAX_IMAGE_BYTES, FetchError, fetch

IMAGE = png(20, 10)
AGENTS = web.AppKey("agents", list[str | None])


async def _image(request: web.Request) -> web.Response:
    request.app[AGENTS].append(request.headers.get("User-Agent"))
    return web.Response(body=IMAGE, content_type="image/png")


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/image.png")


async def _missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 5000, content_type="image/png")


async def _big_unannounced(request: web.Request) -> web.StreamResponse:
    # Chunked, no content-length: the cap must hold while reading, not only up front.
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(5):
        await response.write(b"x" * 1000)
    await response.write_eof()
    return response


async def _stalls(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(body=IMAGE)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[str, web.Application]]:
    app = web.Application()
    app[AGENTS] = []
    app.router.add_get("/image.png", _image)
    app.router.add_get("/moved", _redirect)
    app.router.add_get("/missing", _missing)
    app.router.add_get("/big", _big)
    app.router.add_get("/big-chunked", _big_unannounced)
    app.router.add_get("/stalls", _stalls)
    # Cancel a handler whose client went away, so the stalled one ends with its test.
    runner = web.AppRunner(app, shutdown_timeout=0, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", app
    await runner.cleanup()


async def test_downloads_the_bytes_following_redirects(
    server: tuple[str, web.Application],
) -> None:
    base, app = server
    assert await fetch(f"{base}/image.png", 5) == IMAGE
    assert await fetch(f"{base}/moved", 5) == IMAGE
    assert app[AGENTS][-2:] == ["imagegate-cli", "imagegate-cli"]


async def test_an_http_error_names_status_and_reason(server: tuple[str, web.Application]) -> None:
    base, _ = server
    with pytest.raises(FetchError) as caught:
        await fetch(f"{base}/missing", 5)
    assert str(caught.value) == f"cannot download {base}/missing: HTTP 404 Not Found"


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_a_body_over_the_cap_is_refused(
    server: tuple[str, web.Application], path: str
) -> None:
    base, _ = server
    with pytest.raises(FetchError) as caught:
        await fetch(f"{base}{path}", 5, max_bytes=4096)
    assert str(caught.value) == f"cannot download {base}{path}: larger than 4096 bytes"
    assert await fetch(f"{base}{path}", 5, max_bytes=5000) == b"x" * 5000


def test_the_default_cap_is_64_mib() -> None:
    assert MAX_IMAGE_BYTES == 64 * 1024 * 1024


async def test_only_http_urls_are_fetched() -> None:
    with pytest.raises(FetchError) as caught:
        await fetch("file:///etc/passwd", 5)
    assert str(caught.value) == "cannot download file:///etc/passwd: not an http(s) URL"


async def test_nothing_listening_is_one_sentence() -> None:
    with socket.socket() as probe:  # bound, not listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/image.png"
        with pytest.raises(FetchError) as caught:
            await fetch(url, 5)
    assert str(caught.value) == f"cannot download {url}: Connection refused"


async def test_a_stalled_server_times_out(server: tuple[str, web.Application]) -> None:
    base, _ = server
    with pytest.raises(FetchError) as caught:
        await fetch(f"{base}/stalls", 0.3)
    assert str(caught.value) == f"cannot download {base}/stalls: timed out"
