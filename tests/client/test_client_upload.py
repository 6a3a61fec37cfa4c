"""The edit/variation request stream: parameters first, then 64 KiB chunks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from imagegate.v1 import images_service_pb2, params_pb2
from support.images import write_png

from imagegate_server.client.upload import CHUNK_BYTES, UploadError, declare, request_stream

Req = images_service_pb2.CreateImageEditStreamRequest


def _chunk(chunk: params_pb2.FileChunk) -> Req:
    return Req(chunk=chunk)


def test_declare_reads_name_type_and_size(tmp_path: Path) -> None:
    png = write_png(tmp_path / "photo.png")
    upload = declare(png, params_pb2.FILE_ROLE_IMAGE, 3)
    assert upload.info.filename == "photo.png"
    assert upload.info.content_type == "image/png"
    assert upload.info.HasField("size_bytes") and upload.info.size_bytes == png.stat().st_size
    assert (upload.role, upload.image_index) == (params_pb2.FILE_ROLE_IMAGE, 3)


def test_declare_takes_the_type_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    jpeg = tmp_path / "looks.png"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    assert declare(jpeg).info.content_type == "image/jpeg"
    text = tmp_path / "notes.png"
    text.write_bytes(b"hello, not an image")
    # Undeclared, so the gateway's own magic-byte check gives the authoritative error.
    assert declare(text).info.content_type == ""


def test_declare_fails_early_for_missing_or_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match=r"cannot read .*missing\.png"):
        declare(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UploadError, match="empty"):
        declare(tmp_path / "empty.png")


def test_stream_is_parameters_then_ordered_chunks(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    payload = write_png(tmp_path / "seed.png").read_bytes() + os.urandom(2 * CHUNK_BYTES + 123)
    big.write_bytes(payload)
    mask = write_png(tmp_path / "mask.png")
    uploads = [
        declare(big, params_pb2.FILE_ROLE_IMAGE, 0),
        declare(mask, params_pb2.FILE_ROLE_MASK),
    ]
    params = params_pb2.EditParameters(prompt="p", images=[uploads[0].info], mask=uploads[1].info)
    progress: list[int] = []

    messages = list(request_stream(Req(parameters=params), uploads, _chunk, progress.append))

    assert messages[0].WhichOneof("payload") == "parameters"
    assert messages[0].parameters == params
    chunks = [m.chunk for m in messages[1:]]
    assert all(m.WhichOneof("payload") == "chunk" for m in messages[1:])
    image_chunks = [c for c in chunks if c.role == params_pb2.FILE_ROLE_IMAGE]
    mask_chunks = [c for c in chunks if c.role == params_pb2.FILE_ROLE_MASK]
    assert chunks == image_chunks + mask_chunks  # one file after the other
    assert [len(c.data) for c in image_chunks[:-1]] == [CHUNK_BYTES] * (len(image_chunks) - 1)
    assert 0 < len(image_chunks[-1].data) <= CHUNK_BYTES
    assert b"".join(c.data for c in image_chunks) == payload
    assert b"".join(c.data for c in mask_chunks) == mask.read_bytes()
    assert all(c.image_index == 0 for c in chunks)
    assert sum(progress) == len(payload) + mask.stat().st_size


def test_image_index_follows_the_declaration(tmp_path: Path) -> None:
    uploads = [
        declare(write_png(tmp_path / f"{i}.png"), params_pb2.FILE_ROLE_IMAGE, i) for i in range(3)
    ]
    messages = list(request_stream(Req(), uploads, _chunk))
    assert [m.chunk.image_index for m in messages[1:]] == [0, 1, 2]


def test_a_file_that_changes_during_the_upload_is_reported(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png")
    upload = declare(path)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(UploadError, match="changed during the upload"):
        list(request_stream(Req(), [upload], _chunk))
