"""What the store says about an object: its reference, size, content type, the call
that made it and when it expires; and what a caller gets back for it (a link).

Object keys (:func:`new_key`) are laid out as

    <yyyy-mm-dd>/<HHMM>/<client>/<32 hex digits><.ext>

where the date and minute are when the object EXPIRES (UTC, rounded up to the
minute), and the hex digits are 128 random bits. So:

- nothing is guessable or collides across replicas (the random part alone);
- retention costs one ordered listing: keys sort by expiry, so a sweep reads from
  the start and stops at the first key that has not expired (no per-object reads,
  whatever retention each object was given);
- per-client accounting needs no metadata reads either: the client is in the key
  (a sweep knows whose bytes it deleted from the listing alone), and "may this
  caller read this object?" is a string comparison. The cost: whoever holds a link
  sees the client's name, an operator-chosen label (never a token). Calls without
  a client are ``_anonymous``, which no client name can spell (names begin with a
  letter or digit), and a client name cannot contain ``/`` or begin with ``.``, so
  no key can climb out of its directory.
"""

from __future__ import annotations

import datetime
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

ANONYMOUS = "_anonymous"
_CLIENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
KEY_PATTERN = re.compile(
    rf"(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/(?P<hhmm>\d{{4}})/"
    rf"(?P<client>{_CLIENT}|{ANONYMOUS})/(?P<token>[0-9a-f]{{32}})(?P<ext>\.[a-z0-9]{{1,5}})?"
)
_CLIENT_NAME = re.compile(_CLIENT)
DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
"""The first segment of a key: an expiry date."""
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
}
_MAX_META = 200
MINUTE = datetime.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call a result belongs to, kept as the object's metadata."""

    client: str | None
    """The client's id (None: an anonymous call)."""
    model: str = ""
    request_id: str = ""
    """The call's request id (the gateway's, or the caller's AIP-155 one)."""

    def metadata(self) -> dict[str, str]:
        """As object metadata: ASCII, bounded (callers choose models and request ids;
        S3 carries metadata in HTTP headers)."""
        return {
            "client": client_segment(self.client),
            "model": _header_safe(self.model),
            "request-id": _header_safe(self.request_id),
        }


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One stored result."""

    key: str
    """The object's reference: the key below the store's root (no bucket, no prefix)."""
    size: int
    content_type: str
    expires: datetime.datetime
    """When retention ends (UTC); the sweeper deletes it within a sweep interval."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """``client``, ``model``, ``request-id`` as :meth:`CallInfo.metadata` wrote them."""

    @property
    def client(self) -> str | None:
        """Whose object it is, from its key."""
        return owner(self.key)


@dataclass(frozen=True, slots=True)
class Link:
    """A URL that fetches one object with a plain HTTP GET until ``expires``."""

    url: str
    expires: datetime.datetime


@dataclass(frozen=True, slots=True)
class StoredImage:
    """What the mapping stage puts in a result instead of bytes."""

    object: StoredObject
    link: Link


def client_segment(client: str | None) -> str:
    """The key segment of ``client``; raises ValueError for a name a key cannot hold
    (the clients file's names always fit)."""
    if client is None:
        return ANONYMOUS
    if not _CLIENT_NAME.fullmatch(client):
        raise ValueError("a client name of letters, digits, '.', '_' and '-' (at most 64)")
    return client


def new_key(client: str | None, content_type: str, expires: datetime.datetime) -> str:
    """A fresh key for an object that expires at ``expires`` (aware, any zone)."""
    slot = expiry_slot(expires)
    extension = _EXTENSIONS.get(content_type, "")
    return (
        f"{slot:%Y-%m-%d}/{slot:%H%M}/{client_segment(client)}/{secrets.token_hex(16)}{extension}"
    )


def expiry_slot(expires: datetime.datetime) -> datetime.datetime:
    """``expires`` in UTC, rounded up to the minute: the time its key carries."""
    utc = expires.astimezone(datetime.UTC)
    floor = utc.replace(second=0, microsecond=0)
    return floor if floor == utc else floor + MINUTE


def key_expiry(key: str) -> datetime.datetime | None:
    """When the object of ``key`` may be swept (its slot), or None for a key that is
    not one of ours."""
    match = KEY_PATTERN.fullmatch(key)
    return None if match is None else slot_time(match["date"], match["hhmm"])


def slot_time(date: str, hhmm: str) -> datetime.datetime | None:
    """The time of the expiry slot ``<date>/<hhmm>/`` (None: not a slot's name)."""
    if len(date) != 10 or len(hhmm) != 4 or not hhmm.isdigit():
        return None
    try:
        return datetime.datetime.fromisoformat(f"{date}T{hhmm[:2]}:{hhmm[2:]}:00+00:00")
    except ValueError:
        return None


def is_key(key: str) -> bool:
    """Whether ``key`` is shaped like one of ours (the only keys anything here reads)."""
    return key_expiry(key) is not None


def owner(key: str) -> str | None:
    """The client of ``key`` (None: anonymous, or not one of our keys)."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None or match["client"] == ANONYMOUS:
        return None
    return match["client"]


def _header_safe(value: str) -> str:
    # Percent-encode everything outside printable ASCII, then bound the length.
    return quote(value[:_MAX_META], safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")[: _MAX_META * 3]
