"""One job's request, upstream and back: the request rebuilt and judged, sent, its
answer mapped and priced, and its final images written to the result store.

The same path serves a queued job (any replica: the request comes from the job's
record, its uploads from the result store) and a synchronous call with a request
id (the request as the edge judged it, its result also relayed to the live caller
while it is there). What it returns is what the job keeps: the result without
image bytes, where each image is stored, and the cost.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from imagegate.v1 import params_pb2

from imagegate_server.gateway.edge.storage import store_client
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.mapping.events import MappedItem, stream_items
from imagegate_server.gateway.mapping.results import Finished, ImageSlice
from imagegate_server.gateway.requests.build import RequestBuilder
from imagegate_server.gateway.requests.draft import PreparedRequest
from imagegate_server.imageformat import CONTENT_TYPES, sniff_format
from imagegate_server.jobs.model import JobRecord
from imagegate_server.jobs.payload import JobOutcome, JobRequest, StoredFile, StoredResultImage
from imagegate_server.models import Operation
from imagegate_server.store import CallInfo, ResultStore
from imagegate_server.upstream import ImagesRequest, Reply

_PARAMETERS: dict[str, Any] = {
    Operation.GENERATION.value: params_pb2.GenerationParameters,
    Operation.EDIT.value: params_pb2.EditParameters,
    Operation.VARIATION.value: params_pb2.VariationParameters,
}
_CHUNK_BYTES = 1024 * 1024
Relay = Callable[[MappedItem], None]


class Sender(Protocol):
    """Sends a job's request where the gateway's routing picks, within what its
    client's policy allows (the edge's router implements it)."""

    def send(
        self,
        request: ImagesRequest,
        deadline: float,
        client: str,
        attempting: Callable[[str], None],
    ) -> AbstractAsyncContextManager[Reply]:
        """``attempting(upstream)``: each upstream the request goes to, in turn."""
        ...


@dataclass(frozen=True)
class Ran:
    """A finished run: what the job keeps, and the images themselves (for a caller
    that waits in this process: no read back from the store)."""

    outcome: JobOutcome
    cost_micros: int | None
    finished: Finished
    images: Sequence[bytes | None]


def parameters_of(record: JobRecord, request: JobRequest) -> Any:
    """The job's parameters message, as its caller sent it."""
    return _PARAMETERS[record.operation].FromString(request.parameters)


def wants_partials(parameters: Any) -> bool:
    return bool(getattr(parameters, "partial_images", 0))


class RecentImages:
    """The images this process stored last, by store key, up to ``max_bytes`` in all:
    an inline result read in the process that ran the job (its waiter, usually) needs
    no read back from the store."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        self._images[key] = data
        self._bytes += len(data)
        while self._bytes > self._max_bytes:
            _, dropped = self._images.popitem(last=False)
            self._bytes -= len(dropped)

    def get(self, key: str) -> bytes | None:
        return self._images.get(key)


class Execution:
    """What a run needs from the gateway: its upstream, request rules, prices, store."""

    def __init__(
        self,
        upstream: Sender,
        requests: RequestBuilder,
        pricer: Pricer,
        results: ResultStore,
        retention: datetime.timedelta,
        chunk_bytes: int = _CHUNK_BYTES,
    ) -> None:
        self.upstream = upstream
        self.requests = requests
        self._pricer = pricer
        self.results = results
        self.retention = retention
        self._chunk_bytes = chunk_bytes
        self.recent = RecentImages()

    async def prepare(self, record: JobRecord, request: JobRequest) -> tuple[PreparedRequest, int]:
        """The job's request rebuilt from its record and judged again, its uploads
        read back from the store into spools (``with`` the prepared request: it
        closes them), and how many input images it has (for pricing)."""
        parameters = parameters_of(record, request)
        draft = self.requests.start(
            Operation(record.operation), parameters, streaming=wants_partials(parameters)
        )
        if request.identity:
            draft.stamp_identity(request.identity)
        prepared = await draft.finish(self._chunks(request.files))
        return prepared, draft.input_images

    async def _chunks(self, files: Sequence[StoredFile]) -> AsyncIterator[params_pb2.FileChunk]:
        for file in files:
            reader = await self.results.open(file.key)
            if reader is None:
                raise FileNotFoundError(file.key)
            async with reader:
                async for data in reader.chunks():
                    for offset in range(0, len(data), _CHUNK_BYTES):
                        yield params_pb2.FileChunk(
                            role=file.role,  # type: ignore[arg-type]
                            image_index=file.index,
                            data=data[offset : offset + _CHUNK_BYTES],
                        )

    async def run(
        self,
        record: JobRecord,
        images_request: ImagesRequest,
        deadline: float,
        *,
        input_images: int,
        on_partial: Callable[[int], None] | None = None,
        relay: Relay | None = None,
        attempting: Callable[[str], None] = lambda upstream: None,
    ) -> Ran:
        """Send, map, price and store. ``relay``: each slice (and the result) as it
        arrives, for a caller on a stream RPC; ``attempting``: each upstream the
        request goes to (the last one is what the job's cost is booked to)."""
        finished: Finished | None = None
        images: list[bytes | None] = []
        partials = 0
        send = self.upstream.send(images_request, deadline, record.client, attempting)
        async with send as reply:
            async for item in stream_items(reply, self._chunk_bytes):
                if relay is not None:
                    relay(item)
                if isinstance(item, Finished):
                    finished = item
                elif item.head.HasField("partial_image_index"):
                    if item.head.last:
                        partials += 1
                        if on_partial is not None:
                            on_partial(partials)
                elif item.head.offset == 0:
                    images.append(_whole(item))
        assert finished is not None  # stream_items ends with the result
        in_order = iter(images)  # URL results have no bytes: they are not among them
        aligned = [
            None if image.HasField("url") else next(in_order, None)
            for image in finished.result.images
        ]
        cost = self._pricer.price(
            finished,
            images_request.params,
            input_images=input_images,
            estimate_micros=record.estimate_micros,
        )
        stored = await self.store_images(record, aligned)
        outcome = JobOutcome(finished.result.SerializeToString(), tuple(stored))
        return Ran(outcome, cost, finished, aligned)

    async def store_images(
        self, record: JobRecord, images: Sequence[bytes | None]
    ) -> list[StoredResultImage | None]:
        call = CallInfo(store_client(record.client), record.model, record.request_id or record.id)
        stored: list[StoredResultImage | None] = []
        for data in images:
            if not data:
                stored.append(None)
                continue
            kind = sniff_format(bytes(data[:16]))
            content_type = CONTENT_TYPES.get(kind or "", "image/svg+xml")
            put = await self.results.put(
                data, content_type=content_type, call=call, retention=self.retention
            )
            stored.append(StoredResultImage(put.key, content_type, put.size))
            self.recent.put(put.key, bytes(data))
        return stored


def _whole(piece: ImageSlice) -> bytes:
    """The whole image a first slice belongs to (its slices are views of it)."""
    owner = piece.data.obj
    return owner if isinstance(owner, bytes) else bytes(piece.data)
