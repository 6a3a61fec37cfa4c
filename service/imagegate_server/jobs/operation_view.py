"""A job as callers see it: a ``google.longrunning.Operation``.

``metadata`` is an ``imagegate.v1.ImageJobMetadata``; once done, ``response`` is
the ``ImagesResult`` (each image a link to the stored image, or its bytes when the
submit asked for inline images) or ``error`` the ``google.rpc.Status`` the job
ended with.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from google.longrunning import operations_pb2
from google.protobuf import timestamp_pb2
from google.rpc import status_pb2
from imagegate.v1 import jobs_pb2, quota_pb2, results_pb2

from imagegate_server.errors import ResultTooLarge
from imagegate_server.gateway.mapping.stored import set_stored
from imagegate_server.jobs.execution import RecentImages
from imagegate_server.jobs.model import JobRecord, JobState
from imagegate_server.jobs.payload import JobOutcome, JobRequest, StoredResultImage
from imagegate_server.store import ResultStore, StoredImage, StoredObject

_STATES = {
    JobState.QUEUED: jobs_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: jobs_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
_OPERATIONS = {
    "generation": quota_pb2.OPERATION_GENERATION,
    "edit": quota_pb2.OPERATION_EDIT,
    "variation": quota_pb2.OPERATION_VARIATION,
}


def _timestamp(ms: int | None) -> timestamp_pb2.Timestamp | None:
    if ms is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def metadata(record: JobRecord) -> jobs_pb2.ImageJobMetadata:
    meta = jobs_pb2.ImageJobMetadata(
        state=_STATES[record.state],
        create_time=_timestamp(record.created_ms),
        start_time=_timestamp(record.started_ms),
        end_time=_timestamp(record.ended_ms),
        update_time=_timestamp(record.updated_ms),
        expire_time=_timestamp(record.expires_ms),
        operation=_OPERATIONS.get(record.operation, quota_pb2.OPERATION_UNSPECIFIED),
        model=record.model[:200],
        n=record.n,
        partial_images=record.partial_images,
        estimate_usd_micros=record.estimate_micros,
        client=record.client,
        request_id=record.request_id or "",
        cancel_requested=record.cancel_requested,
    )
    if record.state.done and record.cost_micros is not None:
        meta.cost_usd_micros = record.cost_micros
    return meta


class OperationView:
    """Builds Operations; reads stored images back for inline results."""

    def __init__(
        self, results: ResultStore, max_inline_bytes: int, recent: RecentImages | None = None
    ) -> None:
        self._results = results
        self._max_inline_bytes = max_inline_bytes
        self._recent = recent if recent is not None else RecentImages(0)

    async def operation(self, record: JobRecord) -> operations_pb2.Operation:
        op = operations_pb2.Operation(name=record.name, done=record.state.done)
        op.metadata.Pack(metadata(record))
        if not record.state.done:
            return op
        outcome = JobOutcome.decode(record.outcome)
        if record.state is JobState.SUCCEEDED:
            stored = JobRequest.decode(record.request).stored
            result = await self.result(record, outcome, inline=not stored)
            op.response.Pack(result)
        else:
            op.error.CopyFrom(status_pb2.Status.FromString(outcome.error))
        return op

    async def result(
        self, record: JobRecord, outcome: JobOutcome, *, inline: bool
    ) -> results_pb2.ImagesResult:
        """The job's result: its stored images (reference and link), or their bytes
        (``inline``)."""
        result = results_pb2.ImagesResult.FromString(outcome.result)
        if inline:
            images = await self.image_bytes(outcome.images)
            for image, data in zip(result.images, images, strict=False):
                if data is not None:
                    image.data = data
            return result
        expires = datetime.datetime.fromtimestamp(record.expires_ms / 1000, datetime.UTC)
        for image, stored in zip(result.images, outcome.images, strict=False):
            if stored is not None:
                found = StoredObject(stored.key, stored.size, stored.content_type, expires)
                set_stored(image, StoredImage(found, await self._results.link(found)))
        return result

    async def image_bytes(self, stored: Sequence[StoredResultImage | None]) -> list[bytes | None]:
        """The stored images' bytes, in order (None for an image with none)."""
        total = sum(item.size for item in stored if item is not None)
        if total > self._max_inline_bytes:
            raise ResultTooLarge(
                f"the result's images are {total} bytes, over this gateway's inline limit of "
                f"{self._max_inline_bytes} bytes; read them from their links instead"
            )
        images: list[bytes | None] = []
        for item in stored:
            if item is None:
                images.append(None)
                continue
            held = self._recent.get(item.key)
            if held is not None:
                images.append(held)
                continue
            reader = await self._results.open(item.key)
            if reader is None:
                images.append(None)
                continue
            async with reader:
                images.append(b"".join([chunk async for chunk in reader.chunks()]))
        return images
