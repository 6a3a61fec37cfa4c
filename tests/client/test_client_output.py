"""Output naming and file writing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from imagegate.v1 import params_pb2
from support.images import png

from imagegate_server.client.output import (
    OutputError,
    OutputPlan,
    describe,
    extension_for,
    write_file,
)


def test_one_image_keeps_the_given_name() -> None:
    assert OutputPlan(Path("out.png")).final_path(0, 1, ".webp") == Path("out.png")


def test_several_images_are_numbered_from_one() -> None:
    plan = OutputPlan(Path("dir/out.png"))
    assert [plan.final_path(i, 3, ".png") for i in range(3)] == [
        Path("dir/out-1.png"),
        Path("dir/out-2.png"),
        Path("dir/out-3.png"),
    ]


def test_missing_extension_follows_the_format() -> None:
    plan = OutputPlan(Path("out"))
    assert plan.final_path(0, 1, ".webp") == Path("out.webp")
    assert plan.final_path(1, 2, ".jpg") == Path("out-2.jpg")


def test_partials_are_numbered_in_arrival_order() -> None:
    plan = OutputPlan(Path("out.png"))
    assert plan.next_partial_path(".png") == Path("out.partial-1.png")
    assert plan.next_partial_path(".png") == Path("out.partial-2.png")
    assert OutputPlan(Path("x")).next_partial_path(".webp") == Path("x.partial-1.webp")


def test_extension_from_output_format_then_magic_bytes() -> None:
    data = png()
    assert extension_for(data, params_pb2.OUTPUT_FORMAT_JPEG) == ".jpg"
    assert extension_for(data, params_pb2.OUTPUT_FORMAT_SVG) == ".svg"
    assert extension_for(data) == ".png"
    assert extension_for(b"RIFF\0\0\0\0WEBPVP8 ") == ".webp"
    assert (
        extension_for(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>') == ".svg"
    )
    assert extension_for(b"???") == ".png"


def test_describe_reads_dimensions() -> None:
    assert describe(png(32, 16)).startswith("32x16 png, ")


def test_write_file_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    write_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_file_error_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"cannot write .*missing/a.png: No such file"):
        write_file(tmp_path / "missing" / "a.png", b"x")
