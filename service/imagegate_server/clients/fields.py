"""The values a clients file may hold: how each field's value is read and checked,
as pydantic annotated types (:data:`Limit`, :data:`Budget`, :data:`ByteSize`...)
that :mod:`.schema`'s models are made of, and the parsers ``imagegate clients add``
shares (:func:`byte_size`, :func:`duration_s`, :func:`normalize_identity`).

Each check raises an operator-facing message (``must be an integer >= 1``) that never
repeats the offending value (it might be a pasted token).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import PlainValidator
from pydantic_core import PydanticCustomError

from imagegate_server.clients.tokens import TOKEN_ID_PATTERN
from imagegate_server.livefiles import documents

CLIENT_NAME = documents.NAME
_TOKEN_ID = re.compile(TOKEN_ID_PATTERN)
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# SPIFFE IDs: lower-case trust domain, path segments of [A-Za-z0-9._-] (SPIFFE-ID spec).
_SPIFFE_ID = re.compile(r"spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_MODEL_PATTERN = re.compile(r"[^\s]{1,200}")
OPERATIONS = ("generation", "edit", "variation")
UNLIMITED = "unlimited"

_BYTE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}  # fmt: skip
_BYTE_SIZE = re.compile(r"(\d{1,16})\s*([A-Za-z]{0,3})")
_DURATION = re.compile(r"(\d{1,9})\s*([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
OPERATOR_DEFAULT = "default"
MIN_RETENTION_S = 60
MAX_RETENTION_S = 365 * 86400


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("imagegate", message)


def _limit(value: object) -> int | None:
    if value == UNLIMITED:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _problem('must be an integer >= 1 (or "unlimited")')
    return value


def byte_size(text: str) -> int:
    """Bytes from ``1073741824``, ``"512 MiB"`` or ``"2GB"``; ValueError otherwise."""
    match = _BYTE_SIZE.fullmatch(text.strip())
    unit = _BYTE_UNITS.get(match[2].lower()) if match else None
    if match is None or unit is None:
        raise ValueError("not a size in bytes")
    return int(match[1]) * unit


def _byte_size(value: object) -> int | None:
    if value == UNLIMITED:
        return None
    problem = 'must be a size in bytes >= 0, e.g. 1073741824 or "1 GiB" (or "unlimited")'
    if isinstance(value, str):
        try:
            return byte_size(value)
        except ValueError:
            raise _problem(problem) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _problem(problem)
    return value


def duration_s(text: str) -> int:
    """Seconds from ``3600``, ``"90m"``, ``"24h"`` or ``"7d"``; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError("not a duration")
    return int(match[1]) * _SECONDS[match[2]]


def _retention(value: object) -> int | None:
    if value == OPERATOR_DEFAULT:
        return None
    problem = (
        'must be a duration from 60 s to 365 d, e.g. 86400, "24h" or "7d" '
        '(or "default": the operator\'s)'
    )
    if isinstance(value, str):
        try:
            value = duration_s(value)
        except ValueError:
            raise _problem(problem) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(problem)
    if not MIN_RETENTION_S <= value <= MAX_RETENTION_S:
        raise _problem(problem)
    return value


def _budget(value: object) -> Decimal | None:
    if value == UNLIMITED:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _problem('must be an amount in US dollars, e.g. 25.50 (or "unlimited")')
    try:
        # str() of a float is its shortest repr: 0.1 stays 0.1, not 0.1000000000000000055.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise _problem('must be an amount in US dollars, e.g. 25.50 (or "unlimited")') from None
    if not amount.is_finite() or amount < 0:
        raise _problem("must be a finite amount >= 0")
    if amount != amount.quantize(Decimal("0.000001")):
        raise _problem("must have at most 6 decimal places (micro-dollars)")
    return amount


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _problem("must be true or false")
    return value


def _string_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _problem(f"must be a list of {what}")
    return value


def _models(value: object) -> tuple[str, ...]:
    items = _string_list(value, "model names or glob patterns")
    if not all(_MODEL_PATTERN.fullmatch(item) for item in items):
        raise _problem("model names and patterns must be non-empty, without spaces")
    return tuple(items)


def _operations(value: object) -> frozenset[str]:
    items = _string_list(value, "operations")
    if not all(item in OPERATIONS for item in items):
        raise _problem(f"operations must be among {', '.join(OPERATIONS)}")
    return frozenset(items)


def _upstreams(value: object) -> tuple[str, ...]:
    items = _string_list(value, "upstream names")
    if not items or not all(documents.NAME.fullmatch(item) for item in items):
        raise _problem("must name at least one upstream (names of the upstreams file)")
    return tuple(dict.fromkeys(items))


def _identities(value: object) -> tuple[str, ...]:
    items = _string_list(value, "certificate identities")
    identities = []
    for item in items:
        identity = normalize_identity(item)
        if identity is None:
            raise _problem("each identity must be a spiffe:// ID or a DNS name")
        identities.append(identity)
    return tuple(identities)


def normalize_identity(identity: str) -> str | None:
    """The canonical form of a certificate identity, or None if it is neither a
    SPIFFE ID nor a DNS name. DNS names compare case-insensitively; SPIFFE paths
    are case-sensitive (their trust domain must already be lower case)."""
    identity = identity.strip()
    if identity.startswith("spiffe://"):
        return identity if len(identity) <= 2048 and _SPIFFE_ID.fullmatch(identity) else None
    if len(identity) <= 253 and _DNS_NAME.fullmatch(identity):
        return identity.lower()
    return None


def _timestamp(value: object) -> datetime:
    # TOML and YAML both have native datetimes; a quoted ISO 8601 string works too.
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _problem("must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _problem("must include a time zone, e.g. 2026-12-01T00:00:00Z")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise _problem("must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z")


def _token_id(value: object) -> str:
    if not isinstance(value, str) or not _TOKEN_ID.fullmatch(value):
        raise _problem("must be the token's id (4-32 letters and digits)")
    return value


def _sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise _problem("must be 64 hex digits (the SHA-256 of the token)")
    return value.lower()


def _client_name(value: object) -> str:
    if not isinstance(value, str) or not CLIENT_NAME.fullmatch(value):
        raise _problem(documents.name_rule("client"))
    return value


Limit = Annotated[int | None, PlainValidator(_limit)]
Budget = Annotated[Decimal | None, PlainValidator(_budget)]
ByteSize = Annotated[int | None, PlainValidator(_byte_size)]
Retention = Annotated[int | None, PlainValidator(_retention)]
Flag = Annotated[bool, PlainValidator(_flag)]
Models = Annotated[tuple[str, ...], PlainValidator(_models)]
Operations = Annotated[frozenset[str], PlainValidator(_operations)]
Upstreams = Annotated[tuple[str, ...], PlainValidator(_upstreams)]
Identities = Annotated[tuple[str, ...], PlainValidator(_identities)]
Timestamp = Annotated[datetime, PlainValidator(_timestamp)]
TokenId = Annotated[str, PlainValidator(_token_id)]
Sha256 = Annotated[str, PlainValidator(_sha256)]
ClientName = Annotated[str, PlainValidator(_client_name)]
