"""An admitted call answered: sent where the router picks, its reply mapped into the
RPC's answer (inline bytes, or links to the result store), and the result priced.

    unary    the serialized response: inline, each image copied once from the
             decoded answer into what gRPC sends; stored, each image written to the
             store as it is decoded, and the response carries links
    stream   slices (partial images; inline final images), then the result

A stored call is priced before it can fail for the store (the answer is read to its
end whatever the store does), so its cost is booked and logged: OpenAI billed it.
A call kept under its request id (edge/once) hands its finished result to its run,
for a retry to collect: inline images as bytes, stored ones as the links they got.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field

from imagegate.v1 import results_pb2

from imagegate_server.gateway.edge.callers import Caller
from imagegate_server.gateway.edge.once import KeepRun
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.tenancy import Charge
from imagegate_server.gateway.edge.wire import Rpc
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.mapping.events import stream_items
from imagegate_server.gateway.mapping.results import Finished, ImageSlice, images_result
from imagegate_server.gateway.mapping.serialized import unary_response_bytes
from imagegate_server.gateway.mapping.stored import StoredDelivery, place
from imagegate_server.gateway.requests.draft import Draft
from imagegate_server.metrics import Metrics
from imagegate_server.routing import Router
from imagegate_server.settings import Settings
from imagegate_server.upstream import ImagesAnswer, ImageSink, ImagesRequest, Reply

StreamItem = ImageSlice | results_pb2.ImagesResult


@dataclass
class Admitted:
    """A call past its caller's policy and limits, its uploads received."""

    caller: Caller
    draft: Draft
    request: ImagesRequest
    charge: Charge
    stored: bool
    """Its final images go to the result store (DELIVERY_STORED)."""
    deadline: float
    """The upstream's deadline, in ``loop.time()``: the caller's, or the upstream
    timeout for a call kept under its request id (it outlives its caller)."""
    request_id: str | None = None
    """The call's AIP-155 request id, validated (None: it has none)."""
    run: KeepRun = field(default_factory=lambda: KeepRun(None, None, 0.0))
    """What keeps the call's result for a retry (nothing, without a request id)."""


class Answering:
    def __init__(
        self,
        router: Router,
        settings: Settings,
        storage: Storage,
        pricer: Pricer,
        metrics: Metrics,
    ) -> None:
        self._router = router
        self._settings = settings
        self._storage = storage
        self._pricer = pricer
        self._metrics = metrics

    async def unary(self, rpc: Rpc, admitted: Admitted, call: RpcCall) -> bytes:
        """The serialized response (gRPC sends bytes as they are, see ``wire``). Only
        the bytes come back: the images go (with the method's frame) before gRPC
        makes its own copy of them."""
        if admitted.stored:
            return await self._stored_answer(rpc, admitted, call)
        return await self._inline_answer(rpc, admitted, call)

    async def _inline_answer(self, rpc: Rpc, admitted: Admitted, call: RpcCall) -> bytes:
        async with self._send(admitted, call) as reply:
            call.upstream_answered(reply.request_id)
            assert isinstance(reply, ImagesAnswer)  # a unary request does not stream
            finished = images_result(reply)
            images = reply.images
        self._account(rpc, admitted, finished, call)
        await admitted.run.succeeded(finished, images, admitted.charge.cost_micros)
        image_bytes = sum(len(image) for image in images if image is not None)
        self._metrics.result_bytes(rpc.operation.value, image_bytes)
        return unary_response_bytes(rpc.response, finished.result, images)

    async def _stored_answer(self, rpc: Rpc, admitted: Admitted, call: RpcCall) -> bytes:
        """The result with links: each image stored as it is decoded, never held."""
        async with self._delivery(admitted, call) as delivery:
            sink = delivery.sink()
            async with self._send(admitted, call, sink) as reply:
                call.upstream_answered(reply.request_id)
                assert isinstance(reply, ImagesAnswer)
                finished = images_result(reply)
            place(finished.result, reply.images, await sink.stored())
            self._account(rpc, admitted, finished, call)
            delivery.check()  # a store that failed: UNAVAILABLE, once the call is priced
            kept = [None] * len(finished.result.images)  # the store has them: links kept
            await admitted.run.succeeded(finished, kept, admitted.charge.cost_micros)
        data: bytes = rpc.response(result=finished.result).SerializeToString()
        return data

    def _send(
        self, admitted: Admitted, call: RpcCall, sink: ImageSink | None = None
    ) -> AbstractAsyncContextManager[Reply]:
        """The call, sent where the router picks (:mod:`imagegate_server.routing`);
        ``sink``: where a whole answer's images go as they are decoded."""
        allowed = admitted.caller.policy.upstreams
        return self._router.send(
            admitted.request, admitted.deadline, allowed, admitted.charge.attempting, sink
        )

    def _delivery(self, admitted: Admitted, call: RpcCall) -> StoredDelivery:
        return self._storage.delivery(
            admitted.caller,
            admitted.draft,
            request_id=admitted.request_id or call.request_id,
            deadline=admitted.deadline,
        )

    async def stream(
        self, rpc: Rpc, admitted: Admitted, call: RpcCall
    ) -> AsyncIterator[StreamItem]:
        """Slices, then the result."""
        delivery = self._delivery(admitted, call) if admitted.stored else None
        # A whole answer (OpenAI cannot stream the call) is stored as it is decoded;
        # a streamed one image by image, as its events arrive.
        sink = delivery.sink() if delivery and not admitted.request.stream else None
        storing: AbstractAsyncContextManager[object] = delivery or nullcontext()
        async with (
            storing,
            self._send(admitted, call, sink) as reply,
        ):
            call.upstream_answered(reply.request_id)
            chunk_bytes = self._settings.result_chunk_bytes
            async for item in stream_items(reply, chunk_bytes, delivery, sink):
                if isinstance(item, Finished):
                    self._account(rpc, admitted, item, call)
                    if delivery is not None:
                        delivery.check()
                    await admitted.run.succeeded(item, None, admitted.charge.cost_micros)
                    yield item.result
                else:
                    self._count_slice(rpc, admitted, item)
                    admitted.run.slice_passed(item)
                    yield item

    def _account(self, rpc: Rpc, admitted: Admitted, finished: Finished, call: RpcCall) -> None:
        """Price the finished result (into it) and count what it produced."""
        draft, result = admitted.draft, finished.result
        cost = self._pricer.price(
            finished,
            admitted.request.params,
            input_images=draft.input_images,
            estimate_micros=admitted.charge.estimate_micros,
        )
        if cost is not None:
            admitted.charge.cost_micros = cost
        call.cost_micros = cost
        call.images = len(result.images)
        if result.HasField("usage"):
            call.input_tokens = result.usage.input_tokens
            call.output_tokens = result.usage.output_tokens
        operation = rpc.operation.value
        self._metrics.images(draft.model, operation, len(result.images))

    def _count_slice(self, rpc: Rpc, admitted: Admitted, piece: ImageSlice) -> None:
        operation = rpc.operation.value
        self._metrics.result_bytes(operation, len(piece.data))
        if piece.head.HasField("partial_image_index") and piece.head.last:
            self._metrics.partial_images(admitted.draft.model, operation)
