"""The README is the front door and docs/ the reference: every link between them leads
somewhere, and the README's Python snippet runs as written against a real gateway."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.serve import clean_env, serve

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {_anchor(heading) for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in _LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        checks_anchor = bool(anchor) and resolved.suffix == ".md"
        if not resolved.exists() or (checks_anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_every_docs_page_is_one_click_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = {Path(target.partition("#")[0]).name for target in _LINK.findall(readme)}
    pages = {page.name for page in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"pages the README does not link: {sorted(pages - linked)}"


def test_the_readme_python_snippet_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    stub_section = readme.split("**Call it from a stub.**", 1)[1]
    snippet = re.findall(r"```python\n(.*?)```", stub_section, flags=re.DOTALL)[0]
    with serve([], clean_env(), tmp_path) as gateway:
        port = gateway.wait_serving()
        # The one edit: the README's default port becomes this gateway's free port.
        code = snippet.replace("127.0.0.1:50051", f"127.0.0.1:{port}")
        completed = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "fox.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert int(completed.stdout.strip()) > 0  # the call's cost, in micro-dollars
