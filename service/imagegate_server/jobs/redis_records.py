"""A job as a Redis hash: the short field names the scripts use (:mod:`.redis_scripts`)
and the mapping between a hash's flat field/value replies and a
:class:`~.model.JobRecord`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imagegate_server.jobs.model import JobKind, JobRecord, JobState

_FIELDS = {
    "c": "client", "k": "kind", "o": "operation", "s": "state", "cr": "created_ms",
    "up": "updated_ms", "ex": "expires_ms", "m": "model", "n": "n", "rid": "request_id",
    "fp": "fingerprint", "est": "estimate_micros", "cost": "cost_micros", "st": "started_ms",
    "en": "ended_ms", "pi": "partial_images", "sent": "sent", "own": "owner",
    "cx": "cancel_requested", "sl": "slot", "req": "request", "out": "outcome",
}  # fmt: skip
_INTS = {"created_ms", "updated_ms", "expires_ms", "n", "estimate_micros", "partial_images"}
_OPTIONAL_INTS = {"cost_micros", "started_ms", "ended_ms"}


def text(value: Any) -> str:
    """A reply's value as text (Redis answers bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def record_of(job_id: str, flat: Sequence[Any]) -> JobRecord:
    """The job of a hash's fields and values, flat (as ``HGETALL`` replies to a script)."""
    raw = {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    values: dict[str, Any] = {}
    for short, name in _FIELDS.items():
        value = raw.get(short, b"")
        if name in ("request", "outcome"):
            values[name] = value if isinstance(value, bytes) else str(value).encode()
            continue
        value_text = text(value)
        if name in _INTS:
            values[name] = int(value_text or 0)
        elif name in _OPTIONAL_INTS:
            values[name] = int(value_text) if value_text else None
        elif name in ("sent", "cancel_requested"):
            values[name] = value_text == "1"
        else:
            values[name] = value_text
    return JobRecord(
        id=job_id,
        kind=JobKind(values.pop("kind")),
        state=JobState(values.pop("state")),
        request_id=values.pop("request_id") or None,
        **values,
    )


def record_in(flat: Sequence[Any]) -> JobRecord:
    """The job of a flat hash that carries its own id (field ``id``)."""
    return record_of(_id_of(flat), flat)


def flat_fields(record: JobRecord) -> list[str | int | bytes]:
    """The job as the field, value pairs of its hash (with its id), flat."""
    r = record
    values: dict[str, str | int | bytes] = {
        "id": r.id, "c": r.client, "k": r.kind.value, "o": r.operation, "s": r.state.value,
        "cr": r.created_ms, "up": r.updated_ms, "ex": r.expires_ms, "m": r.model, "n": r.n,
        "rid": r.request_id or "", "fp": r.fingerprint, "est": r.estimate_micros,
        "cost": "" if r.cost_micros is None else r.cost_micros,
        "st": "" if r.started_ms is None else r.started_ms,
        "en": "" if r.ended_ms is None else r.ended_ms, "pi": r.partial_images,
        "sent": int(r.sent), "own": r.owner, "cx": int(r.cancel_requested), "sl": r.slot,
        "req": r.request, "out": r.outcome,
    }  # fmt: skip
    return [item for pair in values.items() for item in pair]


def _id_of(flat: Sequence[Any]) -> str:
    """The id a job hash carries (field ``id``)."""
    for i in range(0, len(flat), 2):
        if text(flat[i]) == "id":
            return text(flat[i + 1])
    raise ValueError("a job hash without its id")
