"""Signed, expiring links to the local store: HMAC-SHA256 over the object's key and
the link's expiry, checked in constant time.

    <base>/o/<key>?expires=<unix seconds>&signature=<base64url HMAC, no padding>

The key is ``store_signing_key``, or one generated once into the data directory
(mode 0600; created with a hard link, so that workers starting together agree on
the first one written and never read a half-written file).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote

from imagegate_server.errors import StartupError
from imagegate_server.store.objects import is_key

PATH_PREFIX = "/o/"
KEY_FILE = "store-signing-key"
_MIN_KEY_BYTES = 32
_EXPIRES = re.compile(r"[0-9]{1,12}")
_DOMAIN = b"imagegate-store-link:v1\n"  # so the key signs nothing but links


class LinkSigner:
    """Makes and checks the local store's links."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise StartupError(
                f"IMAGEGATE_STORE_SIGNING_KEY: at least {_MIN_KEY_BYTES} bytes, please "
                "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        self._key = key

    def url(self, base_url: str, key: str, expires: datetime.datetime) -> str:
        """The link to ``key`` (one of our keys) valid until ``expires``."""
        seconds = int(expires.timestamp())
        signature = self._signature(key, str(seconds))
        return (
            f"{base_url.rstrip('/')}{PATH_PREFIX}{quote(key)}"
            f"?expires={seconds}&signature={signature}"
        )

    def verify(self, key: str, expires: str, signature: str, now: datetime.datetime) -> bool:
        """Whether a request for ``key`` with these query values is a link we made that
        has not expired. Every failure looks the same to the caller."""
        if not is_key(key) or not _EXPIRES.fullmatch(expires):
            return False
        expected = self._signature(key, expires)
        # Compared first, in constant time, whatever the expiry says.
        valid = hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))
        return valid and now.timestamp() <= int(expires)

    def _signature(self, key: str, expires: str) -> str:
        message = _DOMAIN + key.encode() + b"\n" + expires.encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signing_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, or the data directory's (made on first use)."""
    if configured is not None:
        return configured.encode()
    path = data_dir / KEY_FILE
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = data_dir / f".{KEY_FILE}.{secrets.token_hex(8)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        key = path.read_text().strip().encode()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError):
        raise StartupError(
            f"cannot read the store's signing key {str(path)[:200]!r}; fix its "
            "permissions or set IMAGEGATE_STORE_SIGNING_KEY"
        ) from None
    if len(key) < _MIN_KEY_BYTES:
        raise StartupError(
            f"the store's signing key {str(path)[:200]!r} is too short; delete it (links "
            "made with it stop working) or set IMAGEGATE_STORE_SIGNING_KEY"
        )
    return key
