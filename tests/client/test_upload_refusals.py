"""A file of the wrong type gets its INVALID_ARGUMENT every time, never INTERNAL.

The type shows in a file's first chunk, after the gateway's go-ahead, while the
caller is still writing the rest; grpc's asyncio client loses a status that arrives
during its writes and reports INTERNAL (grpc/grpc#36066: 8 of 20 ``imagegate vary``
calls with a 250 KB JPEG under load, before the gateway read the rest first). Here
each path a Python caller has, the CLI and the upload helpers it is built on, sends
such files 100 times to a real ``imagegate serve`` while two processes keep both
cores busy. Every loop is bounded by its count and each call by its deadline.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as svc
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.images import encode, make_image, write_png
from support.serve import clean_env, serve

from imagegate_server.cli import main
from imagegate_server.client.upload import declare, request_stream, upload_then_read

pytestmark = pytest.mark.slow

REPETITIONS = 100
CALL_TIMEOUT_S = 30
# Long enough for both loops under load; the processes are killed when the test ends.
LOAD_S = 900


@contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """``processes`` busy loops, each ending by itself after LOAD_S, killed on exit."""
    code = f"import time\nend = time.monotonic() + {LOAD_S}\nwhile time.monotonic() < end: pass"
    loops = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait(10)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("serve")
    with serve(["--port", "0"], clean_env(HOME=str(workdir)), workdir) as server:
        yield f"127.0.0.1:{server.wait_serving()}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A JPEG of 4 chunks (photographic noise: about 250 KB) and a PNG to edit."""
    folder = tmp_path_factory.mktemp("files")
    photo = folder / "photo.jpg"
    noise = make_image(400, 400, noise=True, seed=7, mode="RGB")
    photo.write_bytes(encode(noise, "JPEG", quality=98))
    assert photo.stat().st_size > 3 * 64 * 1024
    return {"photo": photo, "square": write_png(folder / "square.png", 256, 256)}


def _commands(files: dict[str, Path], out: Path) -> list[tuple[list[str], str]]:
    """(argv, the field the refusal must name): a JPEG to vary, and a JPEG mask."""
    photo, square = str(files["photo"]), str(files["square"])
    return [
        (["vary", photo, "-o", str(out)], "parameters.image"),
        (["edit", square, "a hat", "--mask", photo, "-o", str(out)], "parameters.mask"),
    ]


def test_the_cli_reports_a_wrong_file_type_every_time(
    target: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = _commands(files, tmp_path / "out")
    outcomes: list[str] = []
    with cpu_load():
        for i in range(REPETITIONS):
            argv, field = commands[i % len(commands)]
            code = main([*argv, "--target", target, "--timeout", str(CALL_TIMEOUT_S), "-q"])
            err = capsys.readouterr().err
            ok = code == 1 and err.startswith("imagegate: INVALID_ARGUMENT: ") and field in err
            outcomes.append("ok" if ok else err.strip())
    failures = [outcome for outcome in outcomes if outcome != "ok"]
    assert not failures, f"{len(failures)} of {REPETITIONS}: {sorted(set(failures))}"
    assert not (tmp_path / "out").exists()


async def _helper_upload(target: str, upload_path: Path, role: str) -> grpc.aio.AioRpcError:
    """One call as the CLI makes it, through the helpers it is built on (declare,
    request_stream, upload_then_read) on the streaming RPCs they serve."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        if role == "image":
            upload = declare(upload_path, params_pb2.FILE_ROLE_IMAGE)
            variation = params_pb2.VariationParameters(image=upload.info)
            first = svc.CreateImageVariationStreamRequest(parameters=variation)
            requests = request_stream(
                first, [upload], lambda chunk: svc.CreateImageVariationStreamRequest(chunk=chunk)
            )
            call = stub.CreateImageVariationStream(timeout=CALL_TIMEOUT_S)
        else:
            image = declare(upload_path.parent / "square.png", params_pb2.FILE_ROLE_IMAGE)
            mask = declare(upload_path, params_pb2.FILE_ROLE_MASK)
            edit = params_pb2.EditParameters(prompt="a hat", images=[image.info], mask=mask.info)
            first_edit = svc.CreateImageEditStreamRequest(parameters=edit)
            requests = request_stream(
                first_edit,
                [image, mask],
                lambda chunk: svc.CreateImageEditStreamRequest(chunk=chunk),
            )
            call = stub.CreateImageEditStream(timeout=CALL_TIMEOUT_S)
        try:
            async for _ in upload_then_read(call, requests):
                pass
        except grpc.aio.AioRpcError as error:
            return error
    raise AssertionError("the gateway accepted a JPEG where it must refuse it")


def test_the_python_upload_helpers_report_a_wrong_file_type_every_time(
    target: str, files: dict[str, Path]
) -> None:
    async def run_all() -> list[str]:
        outcomes = []
        for i in range(REPETITIONS):
            role = ("image", "mask")[i % 2]
            error = await _helper_upload(target, files["photo"], role)
            field = f"parameters.{role}"
            ok = error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (
                error.details() or ""
            )
            outcomes.append("ok" if ok else f"{error.code().name}: {error.details()}")
        return outcomes

    with cpu_load():
        outcomes = asyncio.run(run_all())
    failures = [outcome for outcome in outcomes if outcome != "ok"]
    assert not failures, f"{len(failures)} of {REPETITIONS}: {sorted(set(failures))}"
