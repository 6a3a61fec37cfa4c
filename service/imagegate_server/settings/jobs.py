"""Settings of image jobs: runners per process, leases, retention, queue and wait
bounds, and page sizes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class JobsSettings(BaseModel):
    """How jobs run, how long they are kept and how long callers wait on them."""

    jobs_max_running: int = Field(default=64, ge=1, le=100_000)
    """Image jobs one gateway process runs at once (with workers: each worker). A
    replica takes a queued job only while it has a free runner, so the rest wait in
    the queue (where any other replica with a free runner may take them)."""
    jobs_lease_s: float = Field(default=30.0, ge=1, le=3600)
    """How long a job stays with the process running it without that process saying
    it still runs it (it renews every third of this). A process that dies (killed,
    out of memory, its node gone) leaves its jobs for this long at most: then a job
    that had not been sent upstream is queued again, and one that had is failed
    ABORTED and charged its estimate (OpenAI billed it)."""
    jobs_retention_s: float = Field(default=86400.0, ge=1, le=365 * 86400)
    """How long a finished job (its operation, its result, its stored images and
    uploads) is kept, and so how long a request_id keeps answering with the same
    result. Then GetOperation is NOT_FOUND and the request id may be used again."""
    jobs_queue_timeout_s: float = Field(default=3600.0, ge=1, le=7 * 86400)
    """The longest a job waits in its queue; past it the job fails DEADLINE_EXCEEDED
    (``JOB_TIMED_OUT``) and its budget reservation is freed. Reservations of queued
    jobs are held this long plus ``upstream_timeout_s`` and ``limit_hold_margin_s``."""
    jobs_wait_max_s: float = Field(default=300.0, gt=0, le=3600)
    """The longest one WaitOperation call blocks (the shorter of this, its
    ``timeout`` and its deadline wins; then it answers the operation as it is)."""
    jobs_max_page_size: int = Field(default=100, ge=1, le=1000)
    """Most operations one ListOperations page holds (a larger page_size is cut to it)."""
