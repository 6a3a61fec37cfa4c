"""Client tokens: ``igk_<id>_<secret><checksum>``, generated here, stored only as a hash.

The shape follows GitHub's token format: a fixed, greppable prefix; ``_`` as the
separator (it never occurs in base62, so a double-click selects the whole token);
and a CRC32 checksum, so a secret scanner can tell a real token from a look-alike
offline, without asking us.

- ``id``: :data:`ID_CHARS` random base62 characters. Not secret: it is the lookup
  key in the clients file and shows up in ``imagegate clients list``.
- ``secret``: 256 random bits from :mod:`secrets`, as exactly
  :data:`SECRET_CHARS` base62 characters (62**43 > 2**256).
- ``checksum``: CRC32 of ``igk_<id>_<secret>``, as :data:`CHECKSUM_CHARS` base62
  characters (62**6 > 2**32), appended to the secret.

The clients file holds the SHA-256 of the whole token, never the token. A plain
hash suffices because the secret is 256 bits from a CSPRNG, not something a person
chose: password stretching (bcrypt, argon2) and a pepper exist to slow down guessing
of *low-entropy* secrets from a leaked hash, and guessing 2**256 values is out of
reach at any speed. A pepper would add a second secret to deploy and rotate, and a
slow hash would put milliseconds of CPU on every call, for no gain.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "igk_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_CHARS = 8
SECRET_CHARS = 43
CHECKSUM_CHARS = 6
SECRET_BITS = 256

# Token ids in a clients file: what we generate, with room for other lengths.
TOKEN_ID_PATTERN = "[0-9A-Za-z]{4,32}"  # noqa: S105 (a pattern, not a password)
_TOKEN = re.compile(
    rf"{PREFIX}(?P<id>{TOKEN_ID_PATTERN})_(?P<secret>[0-9A-Za-z]{{{SECRET_CHARS}}})"
    rf"(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_CHARS}}})"
)


def base62(number: int, width: int) -> str:
    """``number`` in base62, left-padded with ``0`` to exactly ``width`` characters."""
    if number < 0 or number >= 62**width:
        raise ValueError("number does not fit the width")
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """The checksum characters of ``body`` (``igk_<id>_<secret>``)."""
    return base62(zlib.crc32(body.encode("utf-8", "replace")), CHECKSUM_CHARS)


def digest(token: str) -> bytes:
    """SHA-256 of the whole token: what the clients file stores (hex)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


@dataclass(frozen=True)
class NewToken:
    """A freshly generated token. ``token`` is shown once and then forgotten."""

    token: str
    token_id: str
    sha256: str
    """Hex digest of ``token``, for the clients file."""


def generate(taken_ids: frozenset[str] | set[str] = frozenset()) -> NewToken:
    """A new random token whose id is not in ``taken_ids``."""
    while True:
        token_id = "".join(secrets.choice(ALPHABET) for _ in range(ID_CHARS))
        if token_id not in taken_ids:
            break
    secret = base62(secrets.randbits(SECRET_BITS), SECRET_CHARS)
    body = f"{PREFIX}{token_id}_{secret}"
    token = body + checksum(body)
    return NewToken(token=token, token_id=token_id, sha256=digest(token).hex())


@dataclass(frozen=True)
class ParsedToken:
    """What can be read from a presented token without knowing any secret."""

    token_id: str
    """The id part, or ``""`` when the token is malformed."""
    well_formed: bool
    """Prefix, alphabet, lengths and checksum are all right."""


def parse(token: str) -> ParsedToken:
    """Split a presented token. Always computes the checksum, so a malformed token
    costs the same checksum work as a well-formed one."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        checksum(token)  # the same work; the result cannot match anything
        return ParsedToken(token_id="", well_formed=False)
    body_end = match.start("checksum")
    expected = checksum(token[:body_end])
    return ParsedToken(token_id=match["id"], well_formed=expected == match["checksum"])


def from_authorization(value: str) -> str | None:
    """The token of an ``authorization`` metadata value (``Bearer <token>``), or None.

    The scheme is case-insensitive (RFC 9110); anything else (another scheme, no
    token) is None, which callers treat like a wrong token.
    """
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
