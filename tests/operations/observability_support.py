"""Helpers for the metrics and traces tests: clients with tokens (made as an operator
makes them, with ``imagegate clients add``), small uploads, bearer metadata."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.cli import main as imagegate

IMAGE = params_pb2.FILE_ROLE_IMAGE


def add_client(clients_file: Path, name: str, *options: str) -> str:
    """``imagegate clients add NAME --file FILE OPTIONS``: the new token."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = imagegate(["clients", "add", name, "--file", str(clients_file), *options])
    assert code == 0, f"imagegate clients add exited with {code}"
    token = out.getvalue().strip()
    assert token.startswith("igk_")
    return token


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def edit_messages(
    prompt: str, image: bytes, model: str = "gpt-image-2"
) -> list[pb.CreateImageEditRequest]:
    """A CreateImageEdit call's messages: the parameters, then the image in two chunks."""
    parameters = params_pb2.EditParameters(
        prompt=prompt, model=model, images=[params_pb2.FileInfo(filename="in.png")]
    )
    half = len(image) // 2
    return [
        pb.CreateImageEditRequest(parameters=parameters),
        pb.CreateImageEditRequest(chunk=params_pb2.FileChunk(role=IMAGE, data=image[:half])),
        pb.CreateImageEditRequest(chunk=params_pb2.FileChunk(role=IMAGE, data=image[half:])),
    ]
