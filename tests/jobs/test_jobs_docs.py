"""The jobs page's Python example runs as written against a real ``imagegate serve``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support.serve import clean_env, serve

ROOT = Path(__file__).resolve().parents[2]
# Where the lead places the pending page; until then, the pending one.
PAGES = (ROOT / "docs" / "jobs.md", ROOT / "docs" / "_pending" / "jobs.md")


def test_the_python_example_runs(tmp_path: Path) -> None:
    page = next(page for page in PAGES if page.exists())
    text = page.read_text()
    section = text.split("<!-- snippet python: jobs.py -->", 1)[1]
    snippet = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    with serve([], clean_env(), tmp_path) as gateway:
        port = gateway.wait_serving()
        completed = subprocess.run(
            [sys.executable, "-c", snippet],
            cwd=tmp_path,
            env=clean_env(IMAGEGATE_TARGET=f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("submitted operations/")
    assert "image at http" in completed.stdout
