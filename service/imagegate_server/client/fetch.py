"""Downloading URL results, so ``-o FILE`` always yields a file.

DALL-E models answer with URLs by default (and variations default to dall-e-2),
so a user who asked for ``-o out.png`` without ``--response-format`` would
otherwise get a URL and no file. The client cannot choose ``b64_json`` for them:
it does not know which model the gateway defaults to, and GPT image models
reject ``response_format`` outright. Fetching the URL is the one answer that
works for every model.

httpx runs on the call's own event loop, so a download needs no thread. The
timeout bounds each network step (connecting, every read), not the whole
transfer, and the body is read in pieces so a huge answer stops at the cap.
"""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

import httpx

MAX_IMAGE_BYTES = 64 * 1024 * 1024
_USER_AGENT = "imagegate-cli"


class FetchError(Exception):
    """A URL result that could not be downloaded."""


async def fetch(url: str, socket_timeout: float, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes at ``url`` (http or https, redirects followed), at most ``max_bytes``."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"cannot download {url}: not an http(s) URL")
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
                    f"cannot download {url}: HTTP {response.status_code} {response.reason_phrase}"
                )
            declared = response.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"cannot download {url}: larger than {max_bytes} bytes")
            data = bytearray()
            async for piece in response.aiter_bytes():
                data += piece
                if len(data) > max_bytes:
                    raise FetchError(f"cannot download {url}: larger than {max_bytes} bytes")
    except httpx.HTTPError as error:
        raise FetchError(f"cannot download {url}: {_reason(error)}") from None
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
