"""Each gateway process's runners: take queued jobs fairly, admit them, run them.

    claim      the next job of the client whose turn it is (the store's fairness),
               only while this process has a free runner (``max_running``); or,
               at its submit here, a new job the store leased to a free runner
               because nothing waited (:meth:`Runner.run_claimed`)
    admit      the client's rates and concurrency, and the gateway-wide ceiling,
               now that it starts (its budget was reserved at submit); a limit
               that refuses gives the job back to the head of its queue, its
               client's turn back when the limit frees (RetryInfo) or one of its
               jobs ends
    run        marked sent, then sent (:mod:`.execution`); it ends SUCCEEDED,
               FAILED with the status a caller would get, or CANCELLED
    settle     the concurrency slot freed, the reservation settled at its real
               cost (a failure that may have been billed: the estimate)
    lease      renewed every third of ``lease_s`` while it runs; a process that
               dies stops renewing, and any process's reaper (:mod:`.housekeeping`)
               then queues the job again (not sent) or fails it ABORTED at its
               estimate (sent)

A cancel reaches the process running the job as an event and cancels its task,
which closes its upstream connection (OpenAI stops generating). A job's end is
handed to the waiters in this process (:meth:`Runner.on_finished`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from imagegate_server.errors import (
    JobAborted,
    JobCancelled,
    JobTimedOut,
    LimiterUnavailable,
    LimitRefused,
    may_have_billed,
)
from imagegate_server.jobs.admissions import JobAdmissions, reservation_ticket
from imagegate_server.jobs.execution import Execution
from imagegate_server.jobs.housekeeping import Housekeeping
from imagegate_server.jobs.model import JobRecord, JobState, now_ms
from imagegate_server.jobs.observers import JobObserver, JobTracer, RunSpan
from imagegate_server.jobs.payload import Describe, JobOutcome, JobRequest
from imagegate_server.jobs.store import JobEvent, JobStore
from imagegate_server.limits import Ticket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerLimits:
    max_running: int = 64
    lease_s: float = 30.0
    queue_timeout_s: float = 3600.0
    retention_s: float = 86400.0
    upstream_timeout_s: float = 300.0


class Runner:
    def __init__(
        self,
        store: JobStore,
        execution: Execution,
        admissions: JobAdmissions,
        describe: Describe,
        owner: str,
        limits: RunnerLimits,
        observer: JobObserver,
        tracer: JobTracer | None = None,
    ) -> None:
        self.tracer = tracer
        self._store = store
        self._execution = execution
        self._admissions = admissions
        self._describe = describe
        self.owner = owner
        self._limits = limits
        self._observer = observer
        self._slots = asyncio.Semaphore(limits.max_running)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._clients: dict[str, str] = {}
        """The client of each job running here."""
        self._cancel_asked: set[str] = set()
        self._held: set[str] = set()
        """Calls with a request id running in this process: leased like jobs."""
        self._updates: set[asyncio.Future[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._finished: Callable[[str, JobRecord | None], None] = lambda job_id, record: None
        self.housekeeping = Housekeeping(
            store, execution.results, admissions, describe, observer, self.expires_ms
        )

    @property
    def execution(self) -> Execution:
        return self._execution

    @property
    def lease_ms(self) -> int:
        return round(self._limits.lease_s * 1000)

    def expires_ms(self) -> int:
        return now_ms() + round(self._limits.retention_s * 1000)

    def start(self) -> None:
        for loop in (self._claim_loop, self._renew_loop, self._housekeeping_loop):
            self._loops.append(asyncio.create_task(loop(), name=f"jobs-{loop.__name__}"))

    async def stop(self) -> None:
        """Stop claiming; jobs running here end now: unsent ones go back to their
        queue (a restart or another replica runs them), sent ones fail ABORTED."""
        tasks = [*self._loops, *self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()

    def on_event(self, event: JobEvent) -> None:
        """A cancel for a job running here: cancel its task (closing its upstream
        connection)."""
        if event.kind == "cancel" and event.owner == self.owner:
            task = self._running.get(event.job_id)
            if task is not None:
                self._cancel_asked.add(event.job_id)
                task.cancel()

    # Loops -------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                record = await self._store.claim(self.owner, self.lease_ms, wait_s=5.0)
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception as error:  # the store is down: try again shortly
                self._slots.release()
                log.warning("jobs: claiming failed", extra={"error": type(error).__name__})
                await asyncio.sleep(1.0)
                continue
            if record is None:
                self._slots.release()
                continue
            self.run_claimed(record)

    async def take_runner(self) -> bool:
        """A free runner for a job being submitted here (False: none is free). Hand it
        the job with :meth:`run_claimed` or give it back with :meth:`give_back_runner`."""
        if self._slots.locked():
            return False
        return await self._slots.acquire()  # free: it returns at once

    def give_back_runner(self) -> None:
        self._slots.release()

    def run_claimed(self, record: JobRecord) -> None:
        """Run a job leased to this process, on a runner taken for it."""
        task = asyncio.create_task(self._job(record), name=f"job-{record.id}")
        self._running[record.id] = task
        self._clients[record.id] = record.client
        task.add_done_callback(partial(self._ended, record.id))

    def runs(self, client: str, job_id: str) -> bool:
        """The client's job is running here (its end will be told to :meth:`on_finished`'s
        callback, unless someone else ends it: then the store's event tells)."""
        return self._clients.get(job_id) == client

    def on_finished(self, callback: Callable[[str, JobRecord | None], None]) -> None:
        """``callback(job_id, record)`` when this process ends a job (its waiters here
        need not read it back from the store), and ``(job_id, None)`` when a job stops
        running here however it went (ended elsewhere, given back to its queue)."""
        self._finished = callback

    def _ended(self, job_id: str, _: object) -> None:
        self._running.pop(job_id, None)
        self._clients.pop(job_id, None)
        self._cancel_asked.discard(job_id)
        self._slots.release()
        self._finished(job_id, None)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._limits.lease_s / 3)
            try:
                held = [*self._running, *self._held]
                await self._store.renew(self.owner, held, self.lease_ms)
            except Exception as error:
                log.warning("jobs: lease renewal failed", extra={"error": type(error).__name__})

    async def _housekeeping_loop(self) -> None:
        await self.housekeeping.loop(self._limits.lease_s)

    async def settle(self, ticket: Ticket, amount_micros: int) -> None:
        await self._admissions.settle(ticket, amount_micros)

    def hold(self, job_id: str) -> None:
        """Renew the lease of a call running here (until :meth:`let_go`)."""
        self._held.add(job_id)

    def let_go(self, job_id: str) -> None:
        self._held.discard(job_id)

    def ended(self, state: JobState) -> None:
        self._observer.job_ended(state.value)

    # One job -----------------------------------------------------------------------

    async def _job(self, record: JobRecord) -> None:
        request = JobRequest.decode(record.request)
        reservation = reservation_ticket(record.client, request.reservation)
        waited_s = (now_ms() - record.created_ms) / 1000
        if record.cancel_requested:
            await self._end(record, JobState.CANCELLED, JobCancelled(), None, reservation, 0)
            return
        if waited_s > self._limits.queue_timeout_s:
            error = JobTimedOut(self._limits.queue_timeout_s)
            await self._end(record, JobState.FAILED, error, None, reservation, 0)
            return
        try:
            slot = await self._admissions.start(record.client, record.n)
        except LimitRefused as refused:
            if refused.permanent:
                await self._end(record, JobState.FAILED, refused, None, reservation, 0)
                return
            wait_s = refused.retry_after_s if refused.retry_after_s is not None else 1.0
            await self._store.release(record, now_ms() + round(wait_s * 1000))
            return
        except LimiterUnavailable:
            await self._store.release(record, now_ms() + 1000)
            return
        try:
            await self._send(record, request, reservation, slot)
        finally:
            await self._admissions.settle(slot, 0)

    async def _send(
        self, record: JobRecord, request: JobRequest, reservation: Ticket | None, slot: Ticket
    ) -> None:
        sent = False
        running: JobRecord | None = record
        span: RunSpan | None = None
        went_to: list[str] = []  # each upstream it was sent to, in turn: its cost's
        try:
            prepared, input_images = await self._execution.prepare(record, request)
            with prepared as images_request:
                slot_id = slot.id if slot.accounted else ""
                running = await self._store.mark_sent(record, now_ms(), slot_id)
                if running is None:  # cancelled meanwhile: never sent
                    self._cancel_asked.add(record.id)
                    raise asyncio.CancelledError
                sent = True
                log.info("job started", extra={"job": record.id, "client": record.client})
                if self.tracer is not None:
                    span = self.tracer.run(
                        record.id, record.client, record.operation, record.model,
                        request.traceparent,
                    )  # fmt: skip
                deadline = asyncio.get_running_loop().time() + self._limits.upstream_timeout_s

                def progress(partials: int) -> None:
                    nonlocal running
                    if running is not None:
                        running = running.with_(partial_images=partials)
                    update = asyncio.ensure_future(self._store.progress(record, partials))
                    self._updates.add(update)
                    update.add_done_callback(self._updates.discard)

                ran = await self._execution.run(
                    running, images_request, deadline, input_images=input_images,
                    on_partial=progress, attempting=went_to.append,
                )  # fmt: skip
        except asyncio.CancelledError:
            _end_span(span, "cancelled")
            cost = record.estimate_micros if sent else 0
            last = running or record  # as it was sent (started, partial images)
            if record.id in self._cancel_asked:
                cancelled = JobCancelled()
                await self._end(last, JobState.CANCELLED, cancelled, None, reservation, cost,
                                _last(went_to))  # fmt: skip
                if running is None:
                    return  # our own refusal, not a cancellation of this task
            elif sent:  # this process is stopping mid-run: OpenAI may have billed it
                await self._end(last, JobState.FAILED, JobAborted(), None, reservation, cost,
                                _last(went_to))  # fmt: skip
            else:  # stopping before it was sent: another runner takes it
                await asyncio.shield(self._store.release(record, 0))
            raise
        except Exception as error:
            _end_span(span, "failed")
            cost = record.estimate_micros if sent and may_have_billed(error) else 0
            if not sent:
                log.info("job refused before sending", extra={"error": type(error).__name__})
            last = running or record
            await self._end(last, JobState.FAILED, error, None, reservation, cost, _last(went_to))
            return
        _end_span(span, "succeeded")
        cost = ran.cost_micros if ran.cost_micros is not None else 0
        last = running or record
        await self._end(
            last, JobState.SUCCEEDED, None, ran.outcome, reservation, cost, _last(went_to)
        )

    async def _end(
        self,
        record: JobRecord,
        state: JobState,
        error: BaseException | None,
        outcome: JobOutcome | None,
        reservation: Ticket | None,
        cost: int,
        upstream: str | None = None,
    ) -> None:
        """End the job (once, whoever else tries) and settle what it cost (booked to
        ``upstream`` too: the one it was sent to last)."""
        if outcome is None:
            outcome = JobOutcome(error=self._describe(error) if error else b"")

        async def end() -> None:
            ended = await self._store.finish(
                record, state, outcome.encode(), cost, self.expires_ms()
            )
            if ended is None:
                return  # ended elsewhere (a cancel of a queued job, the reaper)
            log.info("job ended", extra={"job": record.id, "state": state.value, "cost": cost})
            if reservation is not None:
                await self._admissions.settle(reservation, cost, upstream)
            self._observer.job_ended(state.value)
            self._finished(ended.id, ended)

        await asyncio.shield(end())


def _last(upstreams: list[str]) -> str | None:
    return upstreams[-1] if upstreams else None


def _end_span(span: RunSpan | None, state: str) -> None:
    if span is not None:
        span.end(state)
