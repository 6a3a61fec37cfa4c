"""Downloading URL results, so ``-o FILE`` always yields a file.

DALL-E models answer with URLs by default (and variations default to dall-e-2),
so a user who asked for ``-o out.png`` without ``--response-format`` would
otherwise get a URL and no file. The client cannot choose ``b64_json`` for them:
it does not know which model the gateway defaults to, and GPT image models
reject ``response_format`` outright. Fetching the URL is the one answer that
works for every model.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from urllib.parse import urlsplit

MAX_IMAGE_BYTES = 64 * 1024 * 1024


class FetchError(Exception):
    """A URL result that could not be downloaded."""


def _get(url: str, timeout: float) -> bytes:
    if urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"cannot download {url}: not an http(s) URL")
    request = urllib.request.Request(url, headers={"User-Agent": "imagegate-cli"})  # noqa: S310
    try:
        # Scheme checked above: only http(s) reaches urlopen.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data: bytes = response.read(MAX_IMAGE_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise FetchError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise FetchError(f"cannot download {url}: {reason}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise FetchError(f"cannot download {url}: larger than {MAX_IMAGE_BYTES} bytes")
    return data


async def fetch(url: str, socket_timeout: float) -> bytes:
    """The bytes at ``url``; urllib is blocking, so it runs in a worker thread."""
    return await asyncio.to_thread(_get, url, socket_timeout)
