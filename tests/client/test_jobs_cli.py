"""``imagegate generate|edit --detach`` and ``imagegate jobs ...`` against a real
``imagegate serve`` (on its embedded emulator), as a user runs them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support.images import write_png
from support.serve import serve
from test_client_end_to_end import _clean_env, _command, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("serve-jobs")
    with serve(["--port", "0"], _clean_env(workdir), workdir, command=_command()) as server:
        yield f"127.0.0.1:{server.wait_serving(60)}"
        server.terminate()
        server.wait(20)


def test_detach_then_wait_then_result(target: str, tmp_path: Path) -> None:
    submitted = run(target, tmp_path, "generate", "a red fox", "--detach", "--size", "1024x1024")
    assert submitted.returncode == 0, submitted.stderr
    name = submitted.stdout.strip()
    assert name.startswith("operations/")
    waited = run(target, tmp_path, "jobs", "wait", name, "--wait", "60")
    assert waited.returncode == 0, waited.stderr
    assert "succeeded" in waited.stdout
    saved = run(target, tmp_path, "jobs", "result", name, "-o", str(tmp_path / "fox.png"))
    assert saved.returncode == 0, saved.stderr
    with Image.open(tmp_path / "fox.png") as image:
        assert image.size == (1024, 1024)
    listed = run(target, tmp_path, "jobs", "list", "--json")
    assert name in [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    got = run(target, tmp_path, "jobs", "get", name, "--json")
    assert json.loads(got.stdout)["metadata"]["state"] == "JOB_STATE_SUCCEEDED"


def test_an_edit_job_with_a_request_id_submitted_twice_is_one_job(
    target: str, tmp_path: Path
) -> None:
    image = write_png(tmp_path / "in.png", 64, 64)
    request_id = str(uuid.uuid4())
    names = {
        run(
            target, tmp_path, "edit", str(image), "add a hat", "--detach", "--request-id",
            request_id,
        ).stdout.strip()
        for _ in range(2)
    }  # fmt: skip
    assert len(names) == 1
    (name,) = names
    done = run(target, tmp_path, "jobs", "wait", name, "-o", str(tmp_path / "out.png"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.png").stat().st_size > 0


def test_unknown_and_malformed_names(target: str, tmp_path: Path) -> None:
    unknown = run(target, tmp_path, "jobs", "get", f"operations/{uuid.uuid4()}")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    malformed = run(target, tmp_path, "jobs", "cancel", "operations/42")
    assert malformed.returncode == 1 and "INVALID_ARGUMENT" in malformed.stderr
    assert len(malformed.stderr.strip().splitlines()) == 1
