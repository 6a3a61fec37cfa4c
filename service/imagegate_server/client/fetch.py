"""Downloading URL and stored results, so ``-o FILE`` always yields a file, and
:func:`result_images`: every image of an ImagesResult as bytes, however it came.

DALL-E models answer with URLs by default (and variations default to dall-e-2),
so a user who asked for ``-o out.png`` without ``--response-format`` would
otherwise get a URL and no file. The client cannot choose ``b64_json`` for them:
it does not know which model the gateway defaults to, and GPT image models
reject ``response_format`` outright. Fetching the URL is the one answer that
works for every model.

Stored results (``DELIVERY_STORED``) carry a link to the gateway's result store:
a plain GET, with no credential but the link's own signature, fetches them; the
size the result states is checked against what arrives.

httpx runs on the call's own event loop, so a download needs no thread. The
timeout bounds each network step (connecting, every read), ``total_s`` the whole
transfer, and the body is read in pieces so a huge answer stops at the cap.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from urllib.parse import urlsplit

import httpx
from imagegate.v1 import results_pb2

MAX_IMAGE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
_USER_AGENT = "imagegate-cli"


class FetchError(Exception):
    """A URL result that could not be downloaded."""


async def result_images(
    result: results_pb2.ImagesResult,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> list[bytes]:
    """Each image of ``result`` as bytes, in order, whether the gateway sent them inline
    (``data``), stored them (``stored``: its link is fetched) or OpenAI answered with
    a URL (fetched too). Each download takes at most ``timeout_s`` and ``max_bytes``.

        reply = await stub.CreateImage(request)   # delivery inline or stored
        for data in await result_images(reply.result): ...

    Raises :class:`FetchError` for a link that cannot be fetched (expired: ask
    StoredImagesService.GetStoredImage for a fresh one), and ValueError for an
    image of a streaming RPC's result, whose bytes came in ImageChunk slices.
    """
    images: list[bytes] = []
    for index, image in enumerate(result.images):
        content = image.WhichOneof("content")
        if content == "data":
            images.append(image.data)
        elif content == "stored":
            images.append(await fetch_stored(image.stored, timeout_s, max_bytes))
        elif content == "url":
            images.append(await fetch(image.url, timeout_s, max_bytes, total_s=timeout_s))
        else:
            raise ValueError(f"image {index} has no bytes here: they came in ImageChunk slices")
    return images


async def fetch_stored(
    stored: results_pb2.StoredImage,
    socket_timeout: float,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> bytes:
    """A stored image's bytes by its link, checked against the size the result states."""
    if stored.size_bytes > max_bytes:
        raise FetchError(
            f"cannot download {stored.object}: {stored.size_bytes} bytes, over {max_bytes}"
        )
    data = await fetch(stored.url, socket_timeout, stored.size_bytes, total_s=socket_timeout)
    if len(data) != stored.size_bytes:
        raise FetchError(
            f"cannot download {stored.object}: {len(data)} bytes arrived of {stored.size_bytes}"
        )
    return data


async def fetch(
    url: str,
    socket_timeout: float,
    max_bytes: int = MAX_IMAGE_BYTES,
    *,
    total_s: float | None = None,
) -> bytes:
    """The bytes at ``url`` (http or https, redirects followed), at most ``max_bytes``,
    within ``total_s`` (None: each network step within ``socket_timeout``)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"cannot download {_shown(url)}: not an http(s) URL")
    try:
        async with asyncio.timeout(total_s):
            return await _download(url, socket_timeout, max_bytes)
    except TimeoutError:
        raise FetchError(f"cannot download {_shown(url)}: timed out") from None


def _shown(url: str) -> str:
    """A URL without its query: a link's signature is its credential (not for logs)."""
    return url.split("?", 1)[0]


async def _download(url: str, socket_timeout: float, max_bytes: int) -> bytes:
    try:
        async with (
            # The system's CA store, as a browser on this machine would check the host.
            httpx.AsyncClient(
                timeout=socket_timeout,
                follow_redirects=True,
                verify=ssl.create_default_context(),
                headers={"User-Agent": _USER_AGENT},
            ) as client,
            client.stream("GET", url) as response,
        ):
            if not response.is_success:
                raise FetchError(
                    f"cannot download {_shown(url)}: HTTP {response.status_code} "
                    f"{response.reason_phrase}"
                    + (" (an expired or altered link?)" if response.status_code == 403 else "")
                )
            declared = response.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"cannot download {_shown(url)}: larger than {max_bytes} bytes")
            data = bytearray()
            async for piece in response.aiter_bytes():
                data += piece
                if len(data) > max_bytes:
                    raise FetchError(
                        f"cannot download {_shown(url)}: larger than {max_bytes} bytes"
                    )
    except httpx.HTTPError as error:
        raise FetchError(f"cannot download {_shown(url)}: {_reason(error)}") from None
    return bytes(data)


def _reason(error: httpx.HTTPError) -> str:
    """A short cause: httpx's own text for connect failures hides the OS's reason."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = error
    for _ in range(8):  # the chain is short (httpx -> httpcore -> OSError); stay bounded
        if cause is None:
            break
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {getattr(cause, 'verify_message', None) or cause.reason}"
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno) if cause.errno > 0 else str(cause.strerror or cause)
        cause = cause.__cause__ or cause.__context__
    return str(error) or type(error).__name__
