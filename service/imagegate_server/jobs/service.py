"""The jobs stage as the edge uses it: submit, look up, wait, cancel, delete.

One :class:`Jobs` per process: its store, its runners, and one reader of the
store's events that wakes this process's waiters (``WaitOperation``, a retried
call waiting for the first) and tells its runners of cancels. Waiting never polls
the store: a waiter registers, reads the job once (watching it: its end is then
sent to every process), then sleeps until an event for the job (or its timeout). A
job that runs in this process is not read at all: its runner hands its end to the
waiters here.

A submit hands the new job to a free runner of this process in the step that
creates it, when no job waits for its turn (the store decides, see
``JobStore.create``): no round trip through the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from imagegate_server.errors import (
    LimitRefused,
    OperationNotDone,
    OperationNotFound,
)
from imagegate_server.jobs.admissions import reservation_ticket
from imagegate_server.jobs.fingerprint import check_same
from imagegate_server.jobs.model import JobRecord, JobState, now_ms, operation_name
from imagegate_server.jobs.observers import QueueObserver
from imagegate_server.jobs.payload import JobOutcome, JobRequest
from imagegate_server.jobs.runner import Runner
from imagegate_server.jobs.store import ClientJobs, Created, JobEvent, JobStore, Page, QueueFull

log = logging.getLogger(__name__)

OBSERVE_S = 10.0
"""How often each process reads the queue figures for its metrics."""
WATCH_MARGIN_S = 5.0
"""A waiter's watch outlasts its timeout by this (its last read comes after it)."""
MAX_QUEUED_LIMIT = "max_queued_jobs"
"""The QuotaFailure quota_id of a submit refused because its client's queue is full."""


class _Waiter:
    """One waiting caller: woken by an event for its job, or handed the job as it
    ended here."""

    __slots__ = ("ended", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.ended: JobRecord | None = None


class Jobs:
    def __init__(self, store: JobStore, runner: Runner, observer: QueueObserver) -> None:
        self.store = store
        self.runner = runner
        self._observer = observer
        self._waiters: dict[str, set[_Waiter]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        runner.on_finished(self._finished_here)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_events(), name="jobs-events"),
            asyncio.create_task(self._observe(), name="jobs-observe"),
        ]
        self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _observe(self) -> None:
        while True:
            try:
                await self.observe()
            except Exception as error:
                log.warning("jobs: queue figures failed", extra={"error": type(error).__name__})
            await asyncio.sleep(OBSERVE_S)

    async def observe(self) -> None:
        """Read the queue figures into the metrics (every :data:`OBSERVE_S`)."""
        figures = await self.store.queue_lengths()
        now = now_ms()
        self._observer.queues(
            {
                client: (
                    jobs.queued,
                    jobs.running,
                    (now - jobs.oldest_queued_ms) / 1000 if jobs.oldest_queued_ms else 0.0,
                )
                for client, jobs in figures.items()
            }
        )

    async def _read_events(self) -> None:
        while True:
            try:
                async for event in self.store.events():
                    self._deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("jobs: event reader failed", extra={"error": type(error).__name__})
                await asyncio.sleep(1.0)

    def _deliver(self, event: JobEvent) -> None:
        self.runner.on_event(event)
        for waiter in self._waiters.get(event.job_id, ()):
            waiter.woken.set()

    def _finished_here(self, job_id: str, record: JobRecord | None) -> None:
        """A job ended by this process's runner (``record``): its waiters here have it
        as it ended, with no read back from the store. None: it stopped running here
        otherwise; they read it."""
        for waiter in self._waiters.get(job_id, ()):
            waiter.ended = waiter.ended or record
            waiter.woken.set()

    # Submitting --------------------------------------------------------------------

    async def submit(
        self, record: JobRecord, fields: dict[str, str], max_queued: int | None
    ) -> tuple[JobRecord, bool]:
        """Queue ``record``, or find the job its request id already made: (the job,
        whether it is new). Raises AlreadyExists when the request id came with other
        parameters, LimitRefused (``max_queued_jobs``) when the client's queue is full."""
        runner = self.runner
        free = await runner.take_runner()
        try:
            claim_for = runner.owner if free else ""
            created = await self.store.create(record, max_queued, runner.lease_ms, claim_for)
        except BaseException:
            if free:
                runner.give_back_runner()
            raise
        if isinstance(created, Created) and created.claimed:
            runner.run_claimed(created.record)  # nobody waits: it starts now, here
        elif free:
            runner.give_back_runner()
        if isinstance(created, QueueFull):
            raise LimitRefused(
                MAX_QUEUED_LIMIT,
                f"client '{record.client}' has {created.queued} jobs queued, its limit",
                client=record.client,
                retry_after_s=None,
            )
        if not created.created and record.request_id is not None:
            kept = JobRequest.decode(created.record.request).fields
            check_same(record.request_id, kept, fields)
        return created.record, created.created

    # Reading -----------------------------------------------------------------------

    async def get(self, client: str, job_id: str) -> JobRecord:
        record = await self.store.get(client, job_id)
        if record is None:
            raise OperationNotFound(operation_name(job_id))
        return record

    async def page(
        self, client: str, page_size: int, page_token: str, state: JobState | None
    ) -> Page:
        return await self.store.page(client, page_size, page_token, state)

    async def wait(self, client: str, job_id: str, timeout_s: float) -> JobRecord:
        """The job once it is done, or as it is when ``timeout_s`` passes."""
        waiter = _Waiter()
        self._waiters[job_id].add(waiter)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(0.0, timeout_s)
            while True:
                waiter.woken.clear()
                record = waiter.ended
                if record is None and not (
                    loop.time() < deadline and self.runner.runs(client, job_id)
                ):  # else it runs here: its end is handed to this waiter
                    watch_ms = round((deadline - loop.time() + WATCH_MARGIN_S) * 1000)
                    record = await self.store.watch(client, job_id, watch_ms)
                    if record is None:
                        raise OperationNotFound(operation_name(job_id))
                if record is not None and (record.state.done or loop.time() >= deadline):
                    return record
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await waiter.woken.wait()
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[job_id]

    async def client_jobs(self, client: str) -> ClientJobs:
        return await self.store.client_jobs(client)

    # Changing ----------------------------------------------------------------------

    async def cancel(self, client: str, job_id: str, describe_cancelled: bytes) -> JobRecord:
        """Cancel: a queued job at once (its reservation freed here), a running one by
        its runner, wherever it runs. Cancelling a finished job changes nothing."""
        outcome = JobOutcome(error=describe_cancelled).encode()
        answer = await self.store.request_cancel(
            client, job_id, outcome, now_ms(), self.runner.expires_ms()
        )
        if answer is None:
            raise OperationNotFound(operation_name(job_id))
        record, ended_here = answer
        if ended_here:
            ticket = reservation_ticket(
                record.client, JobRequest.decode(record.request).reservation
            )
            if ticket is not None:
                await self.runner.settle(ticket, 0)
            self.runner.ended(JobState.CANCELLED)
        return record

    async def delete(self, client: str, job_id: str) -> JobRecord:
        record = await self.store.delete(client, job_id)
        if record is None:
            raise OperationNotFound(operation_name(job_id))
        if not record.state.done:
            raise OperationNotDone(operation_name(job_id))
        await self.runner.housekeeping.forget_files(record)
        return record
