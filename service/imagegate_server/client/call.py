"""One streaming call end to end: channel, request, answer -> files and a summary.

All three commands answer the same way (image slices, then one ImagesResult), so
one :class:`Receiver` serves them; the commands differ only in how they start the
call (see :mod:`.request`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from google.protobuf.message import Message
from imagegate.v1 import images_service_pb2_grpc, params_pb2, results_pb2

from imagegate_server.client.assemble import ImageAssembler, StreamProtocolError
from imagegate_server.client.connection import Connection
from imagegate_server.client.fetch import fetch, fetch_stored
from imagegate_server.client.output import (
    OutputPlan,
    describe,
    extension_for,
    human_size,
    image_kind,
    write_file,
)
from imagegate_server.client.progress import Progress
from imagegate_server.client.upload import UploadTracker
from imagegate_server.pricing.money import format_usd
from imagegate_server.wording import plural

if TYPE_CHECKING:
    from imagegate.v1.images_service_pb2_grpc import ImagesServiceAsyncStub

_SUFFIX_KINDS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".gif": "gif"}


class ResponseStream(Protocol):
    """What the stub returns for a server-streaming call (an aio call object)."""

    def __aiter__(self) -> AsyncIterator[Message]: ...


Starter = Callable[["ImagesServiceAsyncStub", Connection], ResponseStream]


@dataclass(frozen=True)
class SavedImage:
    index: int
    path: Path | None
    url: str | None
    description: str
    revised_prompt: str | None


def event_of(response: Message) -> results_pb2.ImageChunk | results_pb2.ImagesResult | None:
    """The ``event`` oneof of any of the three stream response types."""
    kind = response.WhichOneof("event")
    value = getattr(response, kind) if kind else None
    if isinstance(value, results_pb2.ImageChunk | results_pb2.ImagesResult):
        return value
    return None


@dataclass
class Receiver:
    """Consumes the answer stream: reassembles images, writes them, reports progress."""

    progress: Progress
    plan: OutputPlan | None
    save_partials: bool = False
    partial_format: int = params_pb2.OUTPUT_FORMAT_UNSPECIFIED
    uploads: UploadTracker | None = None
    assembler: ImageAssembler = field(default_factory=ImageAssembler)
    result: results_pb2.ImagesResult | None = None
    partials: int = 0
    first_byte: bool = False

    def status(self) -> str:
        uploads = self.uploads
        if uploads is not None and uploads.total and uploads.sent < uploads.total:
            percent = 100 * uploads.sent // uploads.total
            return f"uploading {percent}% of {human_size(uploads.total)}"
        if not self.first_byte:
            return "waiting for the images"
        receiving = self.assembler.receiving()
        done = len(self.assembler.finals)
        text = f"receiving: {plural(done, 'image')} complete"
        return text + (f", {human_size(receiving)} of the next" if receiving else "")

    def handle(self, response: Message) -> None:
        event = event_of(response)
        if isinstance(event, results_pb2.ImageChunk):
            self.first_byte = True
            image = self.assembler.feed(event)
            if image is not None and image.is_partial:
                self._partial(image.image_index, image.data)
        elif isinstance(event, results_pb2.ImagesResult):
            if self.result is not None:
                raise StreamProtocolError("the server sent two results")
            self.result = event
        else:
            raise StreamProtocolError("the server sent an empty stream message")

    def _partial(self, image_index: int, data: bytes) -> None:
        self.partials += 1
        what = f"partial image {self.partials} (image {image_index + 1})"
        if self.save_partials and self.plan is not None:
            path = self.plan.next_partial_path(extension_for(data, self.partial_format))
            write_file(path, data)
            self.progress.line(f"{what}: {path} ({describe(data)})")
        else:
            self.progress.line(f"{what} received ({describe(data)})")

    async def finish(self, download_timeout: float) -> list[SavedImage]:
        """After the stream ended: checks completeness and writes the final images.

        URL and stored results are downloaded when ``-o`` was given (see :mod:`.fetch`),
        so ``-o`` yields files whatever the delivery.
        """
        result = self.result
        if result is None:
            raise StreamProtocolError("the stream ended without a result")
        self.assembler.finish()
        finals = dict(self.assembler.finals)
        saved: list[SavedImage] = []
        count = len(result.images)
        for index, image in enumerate(result.images):
            revised = image.revised_prompt if image.HasField("revised_prompt") else None
            url = image.url if image.HasField("url") else None
            if url is not None:
                if self.plan is None:
                    saved.append(SavedImage(index, None, url, "URL, valid 60 minutes", revised))
                    continue
                self.progress.status(lambda: "downloading the URL results")
                data = await fetch(url, download_timeout)
            elif image.HasField("stored"):
                stored = image.stored
                if self.plan is None:
                    saved.append(SavedImage(index, None, stored.url, _stored(stored), revised))
                    continue
                self.progress.status(lambda: "downloading the stored results")
                data = await fetch_stored(stored, download_timeout)
                url = stored.object
            elif image.HasField("data") and image.data:
                data = image.data
            elif index in finals:
                data = finals.pop(index)
            else:
                raise StreamProtocolError(f"image {index} is in the result but was never sent")
            if self.plan is None:
                raise StreamProtocolError(
                    "the result holds image bytes, not URLs: give -o FILE to save them"
                )
            path = self.plan.final_path(index, count, extension_for(data, result.output_format))
            write_file(path, data)
            saved.append(SavedImage(index, path, url, describe(data), revised))
            self._check_suffix(path, data)
        if finals:
            raise StreamProtocolError(
                f"image {min(finals)} was sent but is not in the result ({plural(count, 'image')})"
            )
        return saved

    def _check_suffix(self, path: Path, data: bytes) -> None:
        # The user's own extension wins, but a viewer may trust it: say when it lies.
        expected = _SUFFIX_KINDS.get(path.suffix.lower())
        kind = image_kind(data)
        if expected is not None and kind != expected:
            self.progress.line(f"note: {path} holds {kind} data")


def _stored(stored: results_pb2.StoredImage) -> str:
    expires = stored.expires_at.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")
    return f"stored, {human_size(stored.size_bytes)}, link valid until {expires}"


def summarize(
    saved: list[SavedImage],
    result: results_pb2.ImagesResult,
    progress: Progress,
    stdout: TextIO | None = None,
) -> None:
    """Human summary on stderr; bare paths and URLs on stdout, one per line, for scripts."""
    stdout = stdout or sys.stdout  # looked up now: tests and callers may replace it
    for image in saved:
        where = str(image.path) if image.path is not None else str(image.url)
        progress.line(f"image {image.index + 1}: {where} ({image.description})")
        if image.path is not None and image.url is not None:
            # A stored image's object, never its link (the link is a credential).
            progress.line(f"  downloaded from {image.url}")
        if image.revised_prompt:
            progress.line(f"  revised prompt: {image.revised_prompt}")
    if result.HasField("usage"):
        progress.line("usage: " + _usage(result.usage))
    if result.HasField("cost"):
        progress.line("cost: " + _cost(result.cost))
    if result.HasField("svg_usage"):
        svg = result.svg_usage
        progress.line(
            f"svg usage ({svg.model}): {svg.input_tokens} input + {svg.output_tokens} output"
            f" ({svg.reasoning_tokens} reasoning) = {svg.total_tokens} tokens"
        )
    progress.line(f"done in {progress.elapsed():.1f}s")
    # Last, so on a terminal the paths follow the summary instead of splitting it.
    for image in saved:
        stdout.write(f"{image.path if image.path is not None else image.url}\n")
    stdout.flush()


_COST_BASES = {
    results_pb2.COST_BASIS_USAGE: "from the usage OpenAI reported",
    results_pb2.COST_BASIS_PER_IMAGE: "per image",
    results_pb2.COST_BASIS_ESTIMATE: "estimated: OpenAI reported no usage",
}


def _cost(cost: results_pb2.CallCost) -> str:
    if cost.basis == results_pb2.COST_BASIS_UNPRICED:
        return f"unknown: the price table ({cost.price_table}) has no price for this model"
    basis = _COST_BASES.get(cost.basis, "as the gateway computed it")
    return f"{format_usd(cost.usd_micros)} ({basis}; prices of {cost.price_table})"


def _usage(usage: results_pb2.ImageUsage) -> str:
    text = (
        f"{usage.input_tokens} input + {usage.output_tokens} output = {usage.total_tokens} tokens"
    )
    if usage.HasField("input_tokens_details"):
        details = usage.input_tokens_details
        text += f" (input: {details.text_tokens} text, {details.image_tokens} image)"
    return text


async def run(connection: Connection, start: Starter, receiver: Receiver) -> list[SavedImage]:
    """Makes the call and consumes its answer; gRPC errors propagate as AioRpcError."""
    progress = receiver.progress
    progress.status(receiver.status)
    async with connection.channel() as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        progress.start()
        try:
            async for response in start(stub, connection):
                receiver.handle(response)
            return await receiver.finish(connection.timeout)
        finally:
            await progress.stop()
