"""The jobs examples (the jobs page's, the README's) run as written against a real
``imagegate serve``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.serve import clean_env, serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "docs/jobs.md": "<!-- snippet python: jobs.py -->",
    "README.md": "**Hand off long work.**",
}


@pytest.mark.parametrize("page", sorted(EXAMPLES))
def test_the_python_example_runs(page: str, tmp_path: Path) -> None:
    section = (ROOT / page).read_text().split(EXAMPLES[page], 1)[1]
    snippet = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    with serve([], clean_env(), tmp_path) as gateway:
        port = gateway.wait_serving()
        # The README's default port becomes this gateway's free port.
        code = snippet.replace("127.0.0.1:50051", f"127.0.0.1:{port}")
        completed = subprocess.run(
            [sys.executable, "-c", code],
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
