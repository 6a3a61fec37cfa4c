"""Cleaning up after processes that died and jobs past their retention; any process
of the deployment may do it, and each does it on a timer.

    reap       jobs whose runner stopped renewing its lease (its process died):
               unsent ones back to their queue, sent ones failed ABORTED and
               charged their estimate, the dead process's concurrency slot freed
    forget     finished jobs past their retention deleted, with their uploads and
               images in the result store
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from imagegate_server.errors import JobAborted
from imagegate_server.jobs.admissions import JobAdmissions, reservation_ticket
from imagegate_server.jobs.model import JobRecord, JobState, now_ms
from imagegate_server.jobs.observers import JobObserver
from imagegate_server.jobs.payload import Describe, JobOutcome, JobRequest
from imagegate_server.jobs.store import JobStore
from imagegate_server.limits import Ticket
from imagegate_server.store import ResultStore

log = logging.getLogger(__name__)


class Housekeeping:
    """``expires_ms``: when a job that ends now is forgotten (its retention)."""

    def __init__(
        self,
        store: JobStore,
        results: ResultStore,
        admissions: JobAdmissions,
        describe: Describe,
        observer: JobObserver,
        expires_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._results = results
        self._admissions = admissions
        self._describe = describe
        self._observer = observer
        self._expires_ms = expires_ms

    async def loop(self, lease_s: float) -> None:
        """Reap lapsed leases every half lease; forget expired jobs every minute."""
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(lease_s / 2)
            try:
                await self.reap()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + 60.0
                    await self.forget_expired()
            except Exception as error:
                log.warning("jobs: housekeeping failed", extra={"error": type(error).__name__})

    async def reap(self, limit: int = 100) -> int:
        """Requeue or fail the jobs whose runners stopped renewing (any process may)."""
        aborted = JobOutcome(error=self._describe(JobAborted())).encode()
        lapsed = await self._store.reap(now_ms(), self._expires_ms(), aborted, limit)
        for item in lapsed:
            self._observer.job_lease_expired(item.requeued)
            if not item.requeued:  # sent: OpenAI billed it; charge its estimate
                if item.record.slot:  # the dead process's concurrency slot, freed now
                    slot = Ticket(item.record.slot, item.record.client, 0, accounted=True)
                    await self._admissions.settle(slot, 0)
                request = JobRequest.decode(item.record.request)
                ticket = reservation_ticket(item.record.client, request.reservation)
                if ticket is not None:
                    await self._admissions.settle(ticket, item.record.estimate_micros)
                self._observer.job_ended(JobState.FAILED.value)
        return len(lapsed)

    async def forget_expired(self, limit: int = 1000) -> int:
        """Delete finished jobs past their retention, with their stored files."""
        records = await self._store.expired(now_ms(), limit)
        for record in records:
            await self.forget_files(record)
        return len(records)

    async def forget_files(self, record: JobRecord) -> None:
        """Delete a forgotten job's uploads and images from the result store now."""
        request = JobRequest.decode(record.request)
        outcome = JobOutcome.decode(record.outcome)
        keys = [f.key for f in request.files]
        keys += [image.key for image in outcome.images if image is not None]
        for key in keys:
            with contextlib.suppress(Exception):  # the store's sweeper deletes it anyway
                await self._results.delete(key)
