"""ImageChunk slices -> images, and every way a broken stream is caught."""

from __future__ import annotations

import pytest
from imagegate.v1 import results_pb2

from imagegate_server.client.assemble import ImageAssembler, StreamProtocolError


def chunk(
    index: int, offset: int, data: bytes, *, last: bool = False, partial: int | None = None
) -> results_pb2.ImageChunk:
    message = results_pb2.ImageChunk(image_index=index, offset=offset, data=data, last=last)
    if partial is not None:
        message.partial_image_index = partial
    return message


def test_slices_in_order_make_the_image() -> None:
    assembler = ImageAssembler()
    assert assembler.feed(chunk(0, 0, b"abc")) is None
    assert assembler.receiving() == 3
    image = assembler.feed(chunk(0, 3, b"def", last=True))
    assert image is not None and image.data == b"abcdef" and not image.is_partial
    assert assembler.finals == {0: b"abcdef"}
    assembler.finish()


def test_images_may_interleave_and_partials_are_kept_apart() -> None:
    assembler = ImageAssembler()
    partial = assembler.feed(chunk(0, 0, b"p0", last=True, partial=0))
    assert partial is not None and partial.partial_image_index == 0
    assert assembler.feed(chunk(0, 0, b"a")) is None
    assert assembler.feed(chunk(1, 0, b"x")) is None
    assert assembler.feed(chunk(1, 1, b"y", last=True)) is not None
    assert assembler.feed(chunk(0, 1, b"b", last=True)) is not None
    assert assembler.finals == {0: b"ab", 1: b"xy"}
    # A later partial may reuse index 0 (OpenAI does not number images for n > 1).
    assert assembler.feed(chunk(0, 0, b"p1", last=True, partial=0)) is not None


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        ([chunk(0, 0, b"abc"), chunk(0, 5, b"def")], "offset 5, expected 3.*gap"),
        ([chunk(0, 0, b"abc"), chunk(0, 1, b"def")], "offset 1, expected 3.*overlap"),
        ([chunk(0, 3, b"def"), chunk(0, 0, b"abc")], "offset 3, expected 0.*gap"),  # reordered
        ([chunk(0, 0, b"a", last=True), chunk(0, 0, b"a", last=True)], "received again"),
        (
            [chunk(0, 0, b"p", partial=1), chunk(0, 4, b"q", partial=1)],
            "partial image 1 of image 0",
        ),
    ],
)
def test_broken_streams_are_errors(slices: list[results_pb2.ImageChunk], message: str) -> None:
    assembler = ImageAssembler()
    with pytest.raises(StreamProtocolError, match=message):
        for piece in slices:
            assembler.feed(piece)


def test_an_image_without_its_last_slice_is_an_error() -> None:
    assembler = ImageAssembler()
    assembler.feed(chunk(2, 0, b"abcd"))
    with pytest.raises(StreamProtocolError, match=r"image 2 incomplete.*after 4 bytes"):
        assembler.finish()
