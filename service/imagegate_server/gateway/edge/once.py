"""Calls that carry a ``request_id`` (AIP-155): run once, kept, collected by retries.

A synchronous call with a request id is kept like a job (kind ``call``) in the job
store, so that the same client sending the same request id again, to any replica,
while the first runs or within ``jobs_retention_s`` after it, gets that call's
result: no second upstream request and no second charge. The same request id with
other parameters or other upload bytes is ALREADY_EXISTS naming the field.

Such a call no longer ends when its caller goes away: its work runs in a task of its
own (:mod:`.detached`) that the caller's handler waits for; once the call is kept
(its request id claimed), a caller that leaves or whose deadline passes leaves the
task running to its end, with the upstream timeout as its deadline, and its result
stored for the retry. Until then (and for calls without a request id) a caller that
leaves cancels the work, as before: the upstream request is aborted.

What is kept: the result without image bytes, its images in the result store, the
cost; or, for a failure that may have been billed, its status. A failure that was
not billed (OpenAI refused, or nothing was sent) is forgotten, so a retry runs.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from imagegate.v1 import results_pb2

from imagegate_server.errors import KeptFailure, UpstreamTimeout, may_have_billed
from imagegate_server.gateway.edge.detached import Holder
from imagegate_server.gateway.edge.status import status_bytes
from imagegate_server.gateway.mapping.results import Finished, ImageSlice, slices
from imagegate_server.gateway.requests.draft import Draft
from imagegate_server.jobs.execution import Execution
from imagegate_server.jobs.fingerprint import check_same, field_digests, fingerprint
from imagegate_server.jobs.model import JobKind, JobRecord, JobState, new_job_id, now_ms
from imagegate_server.jobs.operation_view import OperationView
from imagegate_server.jobs.payload import JobOutcome, JobRequest
from imagegate_server.jobs.service import Jobs
from imagegate_server.jobs.store import Created
from imagegate_server.models import Operation
from imagegate_server.uninterrupted import to_its_end
from imagegate_server.upstream import ImagesRequest

T = TypeVar("T")
_ROLES = {"image": 1, "mask": 2, "markup": 3}


class Duplicate(Exception):
    """The request id was claimed already (same parameters): collect that call."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__(record.id)
        self.record = record


@dataclass
class Kept:
    """A call this process runs under its request id."""

    record: JobRecord
    deadline: float
    """The upstream deadline: the upstream timeout, whatever the caller's."""
    sent: bool = field(default=False)
    ended: bool = field(default=False)


class KeepRun:
    """One call's run, kept under its request id or not (``kept`` None: nothing to keep,
    the caller's deadline bounds the upstream request)."""

    def __init__(self, once: OnceCalls | None, kept: Kept | None, deadline: float) -> None:
        self._once = once
        self._kept = kept
        self.deadline = kept.deadline if kept is not None else deadline
        self._finals: list[bytes | None] = []

    async def sending(self) -> None:
        if self._once is not None and self._kept is not None:
            await self._once.sending(self._kept)

    def slice_passed(self, piece: ImageSlice) -> None:
        """A stream's slice went by: keep its final images for the store."""
        if self._kept is not None:
            keep_final(self._finals, piece)

    async def succeeded(
        self, finished: Finished, images: Sequence[bytes | None] | None, cost: int | None
    ) -> None:
        """``images``: the answer's (None: the finals collected from the slices)."""
        if self._once is not None and self._kept is not None:
            kept_images = self._finals if images is None else images
            await self._once.succeeded(self._kept, finished, kept_images, cost)

    async def failed(self, error: BaseException) -> None:
        if self._once is not None and self._kept is not None and not self._kept.ended:
            await self._once.failed(self._kept, error, status_bytes(error))


class OnceCalls:
    def __init__(
        self,
        jobs: Jobs,
        execution: Execution,
        view: OperationView,
        upstream_timeout_s: float,
        retention_s: float,
    ) -> None:
        self._jobs = jobs
        self._execution = execution
        self._view = view
        self._upstream_timeout_s = upstream_timeout_s
        self._retention_ms = round(retention_s * 1000)

    async def run(
        self,
        holder: Holder | None,
        client: str,
        request_id: str | None,
        operation: Operation,
        draft: Draft,
        request: ImagesRequest,
        estimate_micros: int,
        deadline: float,
    ) -> KeepRun:
        """The call's run: kept under its request id when it has one (claimed now:
        from then on it outlives its caller), else as before."""
        if request_id is None or holder is None:
            return KeepRun(None, None, deadline)
        claiming = asyncio.ensure_future(
            self.claim(client, request_id, operation, draft, request, estimate_micros)
        )
        try:
            kept = await to_its_end(claiming)
        except asyncio.CancelledError:
            # The caller left before the call was kept: a claim that landed anyway is
            # forgotten, so that the retry runs the call instead of waiting for one
            # that nobody runs until its lease lapses.
            landed = claiming.done() and not claiming.cancelled()
            if landed and claiming.exception() is None:
                await asyncio.shield(self._forget(claiming.result()))
            raise
        holder.keep_running = True
        return KeepRun(self, kept, deadline)

    async def _forget(self, kept: Kept) -> None:
        self._jobs.runner.let_go(kept.record.id)
        await self._jobs.store.discard(kept.record)

    async def claim(
        self,
        client: str,
        request_id: str,
        operation: Operation,
        draft: Draft,
        request: ImagesRequest,
        estimate_micros: int,
    ) -> Kept:
        """Claim the request id for this call; raises :class:`Duplicate` (same request)
        or AlreadyExists (another request) when a call of the client has it."""
        files = _file_digests(request)
        digests = field_digests(f"call:{operation.value}", draft.parameters, files)
        now = now_ms()
        runner = self._jobs.runner
        record = JobRecord(
            id=new_job_id(), client=client, kind=JobKind.CALL, operation=operation.value,
            state=JobState.RUNNING, created_ms=now, updated_ms=now, started_ms=now,
            expires_ms=now + self._retention_ms + round(self._upstream_timeout_s * 1000),
            model=draft.model, n=draft.n, request_id=request_id,
            fingerprint=fingerprint(digests), estimate_micros=estimate_micros,
            owner=runner.owner, request=JobRequest(b"", fields=digests).encode(),
        )  # fmt: skip
        created = await self._jobs.store.create(record, None, runner.lease_ms)
        assert isinstance(created, Created)  # calls are not queued: no queue is full
        if not created.created:
            kept = created.record
            check_same(request_id, JobRequest.decode(kept.request).fields, digests)
            raise Duplicate(kept)
        runner.hold(record.id)
        deadline = asyncio.get_running_loop().time() + self._upstream_timeout_s
        return Kept(record, deadline)

    async def sending(self, kept: Kept) -> None:
        """Marked sent before the request goes upstream: from here on a process that
        dies leaves it failed ABORTED (charged), never run again."""
        await self._jobs.store.mark_sent(kept.record, now_ms())
        kept.sent = True

    async def succeeded(
        self, kept: Kept, finished: Finished, images: Sequence[bytes | None], cost: int | None
    ) -> None:
        kept.ended = True
        try:
            stored = await self._execution.store_images(kept.record, images)
            outcome = JobOutcome(finished.result.SerializeToString(), tuple(stored))
            await self._end(kept, JobState.SUCCEEDED, outcome, cost)
        except BaseException:
            # The caller has its result; a retry will not: let the retry run again
            # rather than pay for an answer that cannot be kept.
            await asyncio.shield(self._jobs.store.discard(kept.record))
            raise
        finally:
            self._jobs.runner.let_go(kept.record.id)

    async def failed(self, kept: Kept, error: BaseException, status: bytes) -> None:
        kept.ended = True
        try:
            if kept.sent and may_have_billed(error):
                cost = kept.record.estimate_micros
                await self._end(kept, JobState.FAILED, JobOutcome(error=status), cost)
            else:
                await asyncio.shield(self._jobs.store.discard(kept.record))
        finally:
            self._jobs.runner.let_go(kept.record.id)

    async def _end(
        self, kept: Kept, state: JobState, outcome: JobOutcome, cost: int | None
    ) -> None:
        expires = now_ms() + self._retention_ms
        await asyncio.shield(
            self._jobs.store.finish(kept.record, state, outcome.encode(), cost, expires)
        )

    async def collect(
        self, client: str, record: JobRecord, timeout_s: float
    ) -> tuple[results_pb2.ImagesResult, list[bytes | None]]:
        """The kept call's result (images read back from the store), once it is done;
        raises KeptFailure for a kept failure, UpstreamTimeout when it is still running
        at ``timeout_s``, OperationNotFound when it was forgotten meanwhile."""
        done = await self._jobs.wait(client, record.id, timeout_s)
        if not done.state.done:
            raise UpstreamTimeout(
                "the first call with this request_id is still running; retry later "
                "with the same request_id to collect its result"
            )
        outcome = JobOutcome.decode(done.outcome)
        if done.state is not JobState.SUCCEEDED:
            raise KeptFailure(outcome.error)
        result = results_pb2.ImagesResult.FromString(outcome.result)
        return result, await self._view.image_bytes(outcome.images)


async def collected_items(
    once: OnceCalls, record: JobRecord, timeout_s: float, chunk_bytes: int
) -> AsyncIterator[ImageSlice | results_pb2.ImagesResult]:
    """A kept call's result as a stream RPC sends it: each image's slices, then the
    result (no partial images: they were the first caller's)."""
    result, images = await once.collect(record.client, record, timeout_s)
    for index, data in enumerate(images):
        if data is not None:
            for piece in slices(data, chunk_bytes, index):
                yield piece
    yield result


def keep_final(finals: list[bytes | None], piece: ImageSlice) -> None:
    """Collect a stream's final images as their first slices pass (each slice is a
    view of its whole image)."""
    if piece.head.offset == 0 and not piece.head.HasField("partial_image_index"):
        owner = piece.data.obj
        finals.append(owner if isinstance(owner, bytes) else bytes(piece.data))


def _file_digests(request: ImagesRequest) -> dict[tuple[int, int], str]:
    """(role, index) -> sha256 of each uploaded file (images in order, then a mask
    or markup), read back from its spool."""
    digests: dict[tuple[int, int], str] = {}
    images = 0
    for file in request.files:
        index = images if file.role == "image" else 0
        images += file.role == "image"
        digest = hashlib.sha256()
        source = file.open()
        while data := source.read(1024 * 1024):
            digest.update(data)
        digests[_ROLES[file.role], index] = digest.hexdigest()
    return digests
