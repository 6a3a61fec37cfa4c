"""Image slices (ImageChunk) -> whole images, checking that nothing is lost.

The contract sends each image's slices in order with explicit offsets; a slice
whose offset is not where the image currently ends (a gap, an overlap or a
reordering) means the stream is broken, and writing the bytes anyway would
produce a corrupt file that looks fine until opened. So any mismatch is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.v1 import results_pb2

from imagegate_server.wording import plural


class StreamProtocolError(Exception):
    """The server's answer broke the contract (gap, duplicate, missing image...)."""


@dataclass(frozen=True)
class AssembledImage:
    image_index: int
    partial_image_index: int | None
    """Set for a partial (preview) image, None for a final image."""
    data: bytes

    @property
    def is_partial(self) -> bool:
        return self.partial_image_index is not None


def _describe(image_index: int, partial_index: int | None) -> str:
    if partial_index is None:
        return f"image {image_index}"
    return f"partial image {partial_index} of image {image_index}"


class ImageAssembler:
    """Feeds slices in arrival order; returns each image when its last slice arrives."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int | None], bytearray] = {}
        self.finals: dict[int, bytes] = {}
        """Completed final images by image_index."""

    def feed(self, chunk: results_pb2.ImageChunk) -> AssembledImage | None:
        partial = chunk.partial_image_index if chunk.HasField("partial_image_index") else None
        key = (chunk.image_index, partial)
        if partial is None and chunk.image_index in self.finals:
            raise StreamProtocolError(f"{_describe(*key)} received again after it was complete")
        buffer = self._open.setdefault(key, bytearray())
        if chunk.offset != len(buffer):
            problem = "a gap" if chunk.offset > len(buffer) else "an overlap"
            raise StreamProtocolError(
                f"{_describe(*key)}: slice at offset {chunk.offset}, expected {len(buffer)} "
                f"({problem} in the stream)"
            )
        buffer += chunk.data
        if not chunk.last:
            return None
        del self._open[key]
        data = bytes(buffer)
        if partial is None:
            self.finals[chunk.image_index] = data
        return AssembledImage(chunk.image_index, partial, data)

    def receiving(self) -> int:
        """Bytes held in images not yet complete (for the progress display)."""
        return sum(len(buffer) for buffer in self._open.values())

    def finish(self) -> None:
        """Called at the result message: every image must be complete by then."""
        if self._open:
            key, buffer = next(iter(self._open.items()))
            raise StreamProtocolError(
                f"{_describe(*key)} incomplete: the stream ended after "
                f"{plural(len(buffer), 'byte')} without its last slice"
            )
