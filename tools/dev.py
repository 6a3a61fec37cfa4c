"""Developer entry point: one command to test, one to run the demo.

    python3 tools/dev.py test [PYTEST ARGS...]   # the test suite (what CI runs)
    python3 tools/dev.py demo                   # the service on its embedded emulator
    python3 tools/dev.py setup                  # only create/refresh .venv

Needs nothing but python3: it creates ``.venv`` beside this repository's
pyproject.toml and installs the server, the Python client stubs and the dev tools
there (both editable), pinned by ``constraints.txt``. Re-running is cheap: the
install is skipped while the pyproject.toml files, constraints.txt and the
generated stubs are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".imagegate-installed"
STUBS = ROOT / "client_stubs" / "python"
INPUTS = (ROOT / "pyproject.toml", STUBS / "pyproject.toml", ROOT / "constraints.txt")


def _fingerprint() -> str:
    """Of everything the install depends on: the generated stubs too, so that a
    regeneration (even one that keeps every pyproject.toml) reinstalls them."""
    digest = hashlib.sha256()
    for path in (*INPUTS, *sorted(STUBS.glob("imagegate/**/*"))):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def setup() -> None:
    if not PYTHON.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing imagegate, its client stubs and dev tools into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        # Both editable: tests import the stubs and the server from this checkout,
        # never a stale copy in site-packages.
        [*pip, "-c", "constraints.txt", "-e", "./client_stubs/python", "-e", ".[dev]"],
        check=True,
        cwd=ROOT,
    )
    STAMP.write_text(_fingerprint())


def test(pytest_args: list[str]) -> int:
    setup()
    code = subprocess.run([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT).returncode
    if code == 5:
        # pytest's "no tests collected": for this suite that means something is
        # broken (a bad path or a collection filter), never a success.
        print("error: pytest collected no tests", file=sys.stderr)
        return 1
    return code


def demo() -> int:
    setup()
    return subprocess.run([str(BIN / "imagegate"), "demo"], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "test":
        return test(rest)
    if command == "demo":
        return demo()
    if command == "setup":
        setup()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
