"""The client commands against a real ``imagegate serve`` (on its embedded emulator).

Both sides run as the user runs them: the gateway as a subprocess bound to
127.0.0.1:0 (reporting its port through --port-file), the CLI through the
console script; the checks open the written files with Pillow.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support.images import write_png
from support.serve import clean_env, serve

pytestmark = pytest.mark.slow


def _command() -> list[str]:
    script = shutil.which("imagegate")
    return [script] if script else [sys.executable, "-m", "imagegate_server.cli"]


def _clean_env(home: Path) -> dict[str, str]:
    # No OpenAI key (so serve uses its emulator) and no settings leaking in from
    # the developer's environment; HOME/cwd point at a scratch dir (no .env).
    return clean_env(HOME=str(home))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("serve")
    with serve(["--port", "0"], _clean_env(workdir), workdir, command=_command()) as server:
        yield f"127.0.0.1:{server.wait_serving(60)}"
        server.terminate()
        server.wait(20)


def run(target: str, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *argv, "--target", target],
        cwd=cwd,
        env=_clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def image(path: Path) -> tuple[str | None, tuple[int, int]]:
    with Image.open(path) as opened:
        opened.load()  # decodes everything: a truncated file fails here
        return opened.format, opened.size


def test_generate_writes_an_image_of_the_requested_size(target: str, tmp_path: Path) -> None:
    done = run(
        target, tmp_path, "generate", "a red fox", "-o", "fox.png",
        "--model", "gpt-image-1", "--size", "1536x1024", "--quality", "low",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "fox.png\n"
    assert image(tmp_path / "fox.png") == ("PNG", (1536, 1024))
    assert "usage: " in done.stderr


def test_generate_several_with_partials_and_format_extension(target: str, tmp_path: Path) -> None:
    done = run(
        target, tmp_path, "generate", "a lighthouse", "-o", "out", "-n", "2",
        "--model", "gpt-image-1", "--output-format", "webp", "--partial-images", "2",
        "--save-partials",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["out-1.webp", "out-2.webp"]
    for name in ("out-1.webp", "out-2.webp"):
        assert image(tmp_path / name) == ("WEBP", (1024, 1024))
    partials = sorted(tmp_path.glob("out.partial-*.webp"))
    assert len(partials) == 4  # two per image
    assert all(image(p)[0] == "WEBP" for p in partials)
    assert done.stderr.count("partial image ") == 4


def test_edit_uploads_several_images_and_a_mask(target: str, tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1024, 1024)
    write_png(tmp_path / "b.png", 512, 512)
    write_png(tmp_path / "mask.png", 1024, 1024)
    done = run(
        target, tmp_path, "edit", "a.png", "b.png", "--mask", "mask.png", "put them together",
        "-o", "edited.png", "--model", "gpt-image-1", "--size", "1024x1536",
        "--input-fidelity", "high",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert image(tmp_path / "edited.png") == ("PNG", (1024, 1536))


def test_large_upload_and_result_travel_in_slices(target: str, tmp_path: Path) -> None:
    """A 3 MB upload (48 chunks) and a multi-MiB result through default gRPC limits."""
    write_png(tmp_path / "noise.png", 1024, 1024, mode="RGB", noise=True)
    done = run(
        target, tmp_path, "edit", "noise.png", "sharpen", "-o", "big.png",
        "--model", "gpt-image-1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "big.png").stat().st_size > 1024 * 1024  # more than one slice
    assert image(tmp_path / "big.png") == ("PNG", (1024, 1024))


def test_dalle_url_result_is_downloaded_to_the_output(target: str, tmp_path: Path) -> None:
    write_png(tmp_path / "square.png", 256, 256)
    write_png(tmp_path / "mask.png", 256, 256)
    done = run(
        target, tmp_path, "edit", "square.png", "--mask", "mask.png", "add a moon",
        "-o", "moon.png", "--model", "dall-e-2", "--size", "256x256",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert image(tmp_path / "moon.png") == ("PNG", (256, 256))
    assert "downloaded from http" in done.stderr


def test_vary_writes_numbered_files(target: str, tmp_path: Path) -> None:
    write_png(tmp_path / "square.png", 256, 256)
    done = run(
        target, tmp_path, "vary", "square.png", "-o", "v.png", "-n", "2",
        "--size", "512x512", "--response-format", "b64_json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("v-1.png", "v-2.png"):
        assert image(tmp_path / name) == ("PNG", (512, 512))


def test_url_results_without_output_are_printed(target: str, tmp_path: Path) -> None:
    write_png(tmp_path / "square.png", 256, 256)
    done = run(
        target, tmp_path, "vary", "square.png", "--response-format", "url", "--size", "256x256"
    )
    assert done.returncode == 0, done.stderr
    urls = done.stdout.splitlines()
    assert len(urls) == 1 and urls[0].startswith("http")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["square.png"]


def test_invalid_request_is_one_line(target: str, tmp_path: Path) -> None:
    done = run(target, tmp_path, "generate", "x", "-o", "x.png", "-n", "11")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("imagegate: INVALID_ARGUMENT: ")
    assert done.stderr.rstrip().endswith("(field n)")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_wrong_input_type_is_one_line(target: str, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    done = run(target, tmp_path, "vary", "notes.png", "-o", "x.png")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("imagegate: INVALID_ARGUMENT: ")


def test_stored_delivery_writes_the_same_files_with_o(target: str, tmp_path: Path) -> None:
    done = run(
        target, tmp_path, "generate", "a lighthouse", "-o", "out", "-n", "2",
        "--model", "gpt-image-2", "--size", "1024x1024", "--delivery", "stored",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["out-1.png", "out-2.png"]
    for name in ("out-1.png", "out-2.png"):
        assert image(tmp_path / name) == ("PNG", (1024, 1024))
    assert "downloaded from" in done.stderr
    assert "signature=" not in done.stderr  # a link is a credential: never printed with -o


def test_stored_delivery_without_o_prints_the_links(target: str, tmp_path: Path) -> None:
    import urllib.request

    done = run(target, tmp_path, "generate", "a fox", "--delivery", "stored")
    assert done.returncode == 0, done.stderr
    (link,) = done.stdout.splitlines()
    assert link.startswith("http://127.0.0.1:") and "signature=" in link
    assert "link valid until" in done.stderr
    with urllib.request.urlopen(link, timeout=30) as answer:
        assert answer.read().startswith(b"\x89PNG")


def test_an_edit_with_stored_delivery(target: str, tmp_path: Path) -> None:
    write_png(tmp_path / "in.png", 256, 256)
    done = run(
        target, tmp_path, "edit", "in.png", "add a moon", "-o", "moon.png",
        "--model", "gpt-image-2", "--size", "1024x1024", "--delivery", "stored",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert image(tmp_path / "moon.png") == ("PNG", (1024, 1024))
