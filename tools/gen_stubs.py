"""Regenerate the Python client stubs from protos/ (the one command for it).

    python tools/gen_stubs.py           # rewrite client_stubs/python/imagegate/v1
    python tools/gen_stubs.py --check   # exit 1 if the committed stubs are stale

Messages come from protoc's own Python generator; .pyi type stubs for messages and
for the gRPC service come from mypy-protobuf, so callers and our server type-check.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
STUBS_ROOT = ROOT / "client_stubs" / "python"
PACKAGE_DIR = Path("imagegate") / "v1"

INIT_FILES = {
    Path("imagegate") / "__init__.py": '"""imagegate client stubs (generated; do not edit)."""\n',
    PACKAGE_DIR / "__init__.py": (
        '"""imagegate.v1: generated protobuf messages and gRPC stubs (do not edit).\n\n'
        "Regenerate with ``python tools/gen_stubs.py``.\n"
        '"""\n'
    ),
    Path("imagegate") / "py.typed": "",
}


def generate(out: Path) -> None:
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto")
    )
    well_known = resources.files("grpc_tools") / "_proto"
    # mypy-protobuf's plugins sit beside the interpreter running this script (the
    # venv's bin/); named by path, they need no activated venv on PATH.
    plugins = Path(sys.executable).parent
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    subprocess.run(command, check=True, cwd=PROTO_ROOT)
    for relative, text in INIT_FILES.items():
        (out / relative).write_text(text)


def generated_files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in (root / "imagegate").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs differ")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if args.check:
            committed = generated_files(STUBS_ROOT)
            expected = generated_files(fresh)
            stale = sorted(
                str(p)
                for p in committed ^ expected
                | {
                    p
                    for p in committed & expected
                    if not filecmp.cmp(fresh / p, STUBS_ROOT / p, shallow=False)
                }
            )
            if stale:
                print(
                    "client_stubs/python is stale; run `python tools/gen_stubs.py`:",
                    *stale,
                    sep="\n  ",
                )
                return 1
            print("client_stubs/python is up to date")
            return 0
        shutil.rmtree(STUBS_ROOT / "imagegate", ignore_errors=True)
        shutil.copytree(fresh / "imagegate", STUBS_ROOT / "imagegate")
        print(f"regenerated {STUBS_ROOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
