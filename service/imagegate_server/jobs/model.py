"""What the jobs stage keeps about one job, and the names callers use for it.

A job is one Images operation the gateway runs on a caller's behalf: submitted
(``ImageJobsService``) or a synchronous call that carries a ``request_id``, which
is kept like a job so that its retry collects its result instead of paying again.
Both backends (:mod:`.local_store`, :mod:`.redis_store`) keep the same
:class:`JobRecord`; its ``request`` and ``outcome`` (:mod:`.payload`) are opaque
bytes to them.

Names
    ``operations/<uuid>``: a version-4 UUID, lower case, hyphenated (36
    characters). The gateway chooses it; AIP-151 leaves the format to the API.
Request ids (AIP-155)
    A UUID in its 36-character hyphenated form, any version; upper-case hex is
    taken as lower case, so ``A...`` and ``a...`` are one request.
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from dataclasses import dataclass, field, replace

from imagegate_server.errors import InvalidRequest

NAME_PREFIX = "operations/"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class JobState(enum.Enum):
    """Where a job is (the contract's ``JobState`` without its prefix)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in _DONE


_DONE = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobKind(enum.Enum):
    JOB = "job"
    """Submitted through ImageJobsService: queued, listed, run by any replica."""
    CALL = "call"
    """A synchronous call with a request_id: run at once by the replica it reached,
    kept only so that its retry finds it (never listed, never queued)."""


def new_job_id() -> str:
    return str(uuid.uuid4())


def operation_name(job_id: str) -> str:
    return NAME_PREFIX + job_id


def job_id_of(name: str, field_name: str = "name") -> str:
    """The job id of an operation name; INVALID_ARGUMENT naming ``field_name`` otherwise."""
    if not name.startswith(NAME_PREFIX) or not _UUID.fullmatch(name[len(NAME_PREFIX) :]):
        raise InvalidRequest.one(
            field_name,
            "must be an operation name: 'operations/' and a lower-case UUID "
            "(as SubmitImageJob returned it)",
            "invalid_operation_name",
        )
    return name[len(NAME_PREFIX) :]


def checked_request_id(value: str, field_name: str = "request_id") -> str | None:
    """The request id, normalised to lower case (None when unset); INVALID_ARGUMENT
    naming ``field_name`` for anything but a hyphenated UUID."""
    if not value:
        return None
    lowered = value.lower()
    if len(value) != 36 or not _UUID.fullmatch(lowered):
        raise InvalidRequest.one(
            field_name,
            "must be a UUID in its 36-character hyphenated form, e.g. "
            "'0b0f3c8e-5a4d-4c7e-9a57-2f2d3c4b5a69'",
            "invalid_request_id",
        )
    return lowered


def now_ms() -> int:
    return round(time.time() * 1000)


@dataclass(frozen=True)
class JobRecord:
    """One job as the store keeps it. Times are milliseconds since 1970 (UTC)."""

    id: str
    client: str
    kind: JobKind
    operation: str
    """``generation``, ``edit`` or ``variation`` (:class:`~imagegate_server.models.Operation`)."""
    state: JobState
    created_ms: int
    updated_ms: int
    expires_ms: int
    """When the record (and its stored uploads and images) is forgotten."""
    model: str = ""
    n: int = 1
    request_id: str | None = None
    fingerprint: str = ""
    """Hex digest of the canonical parameters and upload hashes (:mod:`.fingerprint`)."""
    estimate_micros: int = 0
    cost_micros: int | None = None
    started_ms: int | None = None
    ended_ms: int | None = None
    partial_images: int = 0
    sent: bool = False
    """Its request went (or was about to go) upstream: from then on it is never
    re-run, and a failure may have been billed."""
    owner: str = ""
    """The runner (replica and process) running it; empty while queued."""
    cancel_requested: bool = False
    slot: str = ""
    """The limiter ticket of the concurrency slot it runs under, once sent (the reaper
    frees it when its process died)."""
    request: bytes = field(default=b"", repr=False)
    """:class:`~.payload.JobRequest`, encoded: written once, at submit."""
    outcome: bytes = field(default=b"", repr=False)
    """:class:`~.payload.JobOutcome`, encoded: written once, when the job ends."""

    @property
    def name(self) -> str:
        return operation_name(self.id)

    def with_(self, **changes: object) -> JobRecord:
        return replace(self, **changes)  # type: ignore[arg-type]
