"""Where jobs live: one interface, two backends.

:class:`~.local_store.LocalJobStore` keeps them in the gateway's SQLite database
(the default without Redis: every worker of one ``serve`` shares it, a restart
loses none); :class:`~.redis_store.RedisJobStore` in Redis, shared by every
replica. Both make the same promises:

- ``create`` is atomic with the request-id index: two submits of one request id,
  on any replicas at once, make one job; a full queue refuses in the same step.
- ``claim`` hands each queued job to one runner, fairly: clients with queued work
  take turns (one job each per turn), whatever each has queued.
- every change of a job's state is one step that checks the state it changes
  from, so a job ends exactly once (and is settled once), whoever ends it: its
  runner, a cancel, or the reaper of an expired lease.
- ``events`` tells every process of the deployment, without polling, that a job
  one of them watches ended, or that a job was asked to cancel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from imagegate_server.jobs.model import JobRecord, JobState

EventKind = Literal["done", "cancel", "work"]


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    job_id: str = ""
    owner: str = ""
    """For ``cancel``: the runner that runs the job (the one that must act)."""


@dataclass(frozen=True)
class Created:
    record: JobRecord
    created: bool
    """False: the request id was known; ``record`` is the first submit's job."""
    claimed: bool = False
    """The new job went straight to the runner it was created for (``claim_for``)."""


@dataclass(frozen=True)
class QueueFull:
    queued: int
    """The client's queued jobs (at its ``max_queued_jobs``)."""


@dataclass(frozen=True)
class ClientJobs:
    queued: int
    running: int
    oldest_queued_ms: int | None
    """Creation time of the client's oldest queued job."""


@dataclass(frozen=True)
class Page:
    records: tuple[JobRecord, ...]
    next_token: str
    """Empty on the last page."""


def page_of(records: Sequence[JobRecord], page_size: int) -> Page:
    """The page of the first ``page_size`` of ``records``, newest first, read one past
    it: when there is one more, the token says where the next page starts (after the
    page's last record; equal creation times are ordered by id)."""
    page = tuple(records[:page_size])
    more = len(records) > page_size
    return Page(page, f"{page[-1].created_ms}.{page[-1].id}" if more and page else "")


@dataclass(frozen=True)
class Lapsed:
    """A job whose runner stopped renewing its lease (its replica died), as the
    reaper found it: ``requeued`` when it had not been sent and went back to its
    queue, else failed (ABORTED) by the reaper, which now settles it."""

    record: JobRecord
    requeued: bool


class JobStore(Protocol):
    backend: str
    """``local`` or ``redis``."""

    async def create(
        self,
        record: JobRecord,
        max_queued: int | None,
        lease_ms: int = 60_000,
        claim_for: str = "",
    ) -> Created | QueueFull:
        """Add ``record`` (a queued job, or a running call leased for ``lease_ms`` to its
        ``owner``), unless its client already has a job with its request id: then that
        one. A queued job past ``max_queued`` of its client's queued jobs is refused
        (QueueFull). A job created with ``claim_for`` (a runner with a free slot) is
        leased to that runner at once, in the same step, when no job of any client
        waits for its turn (``Created.claimed``): nobody is passed over, and the job
        skips the round trips of a turn."""
        ...

    async def get(self, client: str, job_id: str) -> JobRecord | None:
        """The client's job, or None (unknown, past its retention, or another client's)."""
        ...

    async def watch(self, client: str, job_id: str, for_ms: int) -> JobRecord | None:
        """:meth:`get`, for a waiter: while the job is not done, its end goes out to
        every process as an event for at least ``for_ms`` (an end nobody watches may
        tell no other process: the one that ended it tells its own waiters)."""
        ...

    async def page(
        self, client: str, page_size: int, page_token: str, state: JobState | None
    ) -> Page:
        """The client's submitted jobs, newest first."""
        ...

    async def delete(self, client: str, job_id: str) -> JobRecord | None:
        """Forget a finished job now; returns it (None: no such job, or not finished:
        see its state)."""
        ...

    async def claim(self, owner: str, lease_ms: int, wait_s: float) -> JobRecord | None:
        """The next queued job, fairly across clients, leased to ``owner``; waits up to
        ``wait_s`` for one (None: none came)."""
        ...

    async def release(self, record: JobRecord, retry_at_ms: int) -> None:
        """Give a claimed job back to the head of its client's queue: a limit refused
        it; its client's turn comes again at ``retry_at_ms`` (or earlier, when one of
        the client's jobs ends and frees a slot)."""
        ...

    async def mark_sent(self, record: JobRecord, now_ms: int, slot: str = "") -> JobRecord | None:
        """RUNNING and sent, just before its request goes upstream, under the
        concurrency ``slot`` (a limiter ticket id); None when it was cancelled meanwhile
        (then it is not sent)."""
        ...

    async def progress(self, record: JobRecord, partial_images: int) -> None: ...

    async def finish(
        self,
        record: JobRecord,
        state: JobState,
        outcome: bytes,
        cost_micros: int | None,
        expires_ms: int,
    ) -> JobRecord | None:
        """End the job (SUCCEEDED, FAILED or CANCELLED) unless it already ended; the
        ended record, or None when someone else ended it first."""
        ...

    async def discard(self, record: JobRecord) -> None:
        """Forget a call (kind ``call``) whose failure was not billed, or whose result
        could not be kept, so that its request id runs again."""
        ...

    async def renew(self, owner: str, job_ids: Sequence[str], lease_ms: int) -> None: ...

    async def reap(self, now_ms: int, expires_ms: int, error: bytes, limit: int) -> list[Lapsed]:
        """Jobs whose lease lapsed: unsent jobs back to their queue (calls: forgotten,
        so that their retry runs them), sent ones FAILED with ``error``."""
        ...

    async def request_cancel(
        self, client: str, job_id: str, outcome: bytes, now_ms: int, expires_ms: int
    ) -> tuple[JobRecord, bool] | None:
        """Ask for the job's cancellation: a job waiting in its queue is CANCELLED at
        once with ``outcome`` (True: this call ended it, and settles it), a claimed or
        running one's runner is told (an event) and ends it itself. None: no such job."""
        ...

    async def client_jobs(self, client: str) -> ClientJobs: ...

    async def queue_lengths(self) -> dict[str, ClientJobs]:
        """Every client with queued or running jobs (for the metrics)."""
        ...

    async def expired(self, now_ms: int, limit: int) -> list[JobRecord]:
        """Remove up to ``limit`` finished jobs past their retention; returns them so
        that their stored uploads and images are deleted too."""
        ...

    def events(self) -> AsyncIterator[JobEvent]:
        """Events from every process, from now on (one reader per process)."""
        ...

    async def aclose(self) -> None: ...
