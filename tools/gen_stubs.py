"""Regenerate every language's committed client stubs from protos/ (the one command).

    python tools/gen_stubs.py                   # rewrite the generated folders below
    python tools/gen_stubs.py --check           # exit 1 if any committed file is stale
    python tools/gen_stubs.py --only go --only typescript

| language   | generated folder (replaced whole)     | generator, pinned where                    |
| ---------- | ------------------------------------- | ------------------------------------------ |
| python     | client_stubs/python/imagegate         | grpcio-tools + mypy-protobuf (constraints) |
| go         | client_stubs/go/gen                   | protoc-gen-go, protoc-gen-go-grpc (go.mod  |
|            |                                       | `tool` lines), run by buf                  |
| typescript | client_stubs/typescript/src/gen       | protoc-gen-es (tools/buf/package.json),    |
|            |                                       | run by buf; google/rpc from google-proto-  |
|            |                                       | files (same package.json)                  |

Java has nothing committed: its Maven build (client_stubs/java/pom.xml) generates
from protos/ itself, with protoc and protoc-gen-grpc-java pinned in the pom.

Needs python3 with this repository's .venv (grpcio-tools), Go, and Node/npm; the
npm tools in tools/buf are installed here when they are missing or older than
their lock file. buf templates: tools/buf-gen/*.yaml.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
STUBS = ROOT / "client_stubs"
NPM_TOOLS = ROOT / "tools" / "buf"
BUF_TEMPLATES = ROOT / "tools" / "buf-gen"
GOOGLE_PROTOS = NPM_TOOLS / "node_modules" / "google-proto-files"
# The google.rpc files the TypeScript package ships so that callers can decode
# error details (Status, BadRequest, ErrorInfo, RetryInfo, QuotaFailure...). Go
# and Java take these types from their ecosystems' published packages.
GOOGLE_RPC_FILES = ("google/rpc/status.proto", "google/rpc/error_details.proto")
# google.longrunning, which imagegate/v1/jobs.proto imports, and what it imports:
# copied into protos/third_party/googleapis (so that buf and every language's
# build resolve the import) from the same pinned package; --check fails on a copy
# that differs from it. Python, Go and Java take the generated code from their
# ecosystems' packages (googleapis-common-protos, cloud.google.com/go/longrunning,
# proto-google-common-protos); TypeScript ships it, like google/rpc.
GOOGLE_LONGRUNNING_FILES = (
    "google/longrunning/operations.proto",
    "google/api/annotations.proto",
    "google/api/client.proto",
    "google/api/field_behavior.proto",
    "google/api/http.proto",
    "google/api/launch_stage.proto",
    "google/rpc/status.proto",
)
VENDORED_PROTOS = PROTO_ROOT / "third_party" / "googleapis"
# What each language generates from protos/: our own files (the vendored ones are
# only imported).
OWN_PROTOS = ("imagegate",)
GO_PLUGINS = (
    "google.golang.org/protobuf/cmd/protoc-gen-go",
    "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
)

PYTHON_INIT_FILES = {
    Path("__init__.py"): '"""imagegate client stubs (generated; do not edit)."""\n',
    Path("v1") / "__init__.py": (
        '"""imagegate.v1: generated protobuf messages and gRPC stubs (do not edit).\n\n'
        "Regenerate with ``python tools/gen_stubs.py``.\n"
        '"""\n'
    ),
    Path("py.typed"): "",
}


@dataclass(frozen=True)
class Target:
    """One language: the committed folder and how to produce its fresh content."""

    name: str
    folder: Path
    generate: Callable[[Path, Path], None]
    """(out, scratch): write the folder's fresh content into ``out``."""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(command, check=True, cwd=cwd, env=env)


def _imagegate_protos() -> list[str]:
    return sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "imagegate" / "v1").glob("*.proto")
    )


def generate_python(out: Path, scratch: Path) -> None:
    # Messages from protoc's own Python generator; .pyi stubs for messages and the
    # gRPC service from mypy-protobuf, so callers and our server type-check.
    well_known = resources.files("grpc_tools") / "_proto"
    # mypy-protobuf's plugins sit beside the interpreter running this script (the
    # venv's bin/); named by path, they need no activated venv on PATH.
    plugins = Path(sys.executable).parent
    tree = scratch / "python"
    tree.mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--proto_path={VENDORED_PROTOS}",
            f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tree}",
            f"--grpc_python_out={tree}",
            f"--mypy_out={tree}",
            f"--mypy_grpc_out={tree}",
            *_imagegate_protos(),
        ],
        cwd=PROTO_ROOT,
    )
    shutil.move(tree / "imagegate", out)
    for relative, text in PYTHON_INIT_FILES.items():
        (out / relative).write_text(text)


def _npm_tools() -> Path:
    """tools/buf/node_modules/.bin, installed (npm ci) when missing or stale."""
    installed = NPM_TOOLS / "node_modules" / ".package-lock.json"
    lock = NPM_TOOLS / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        print("installing the pinned protobuf tools (npm ci in tools/buf) ...", flush=True)
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NPM_TOOLS)
    return NPM_TOOLS / "node_modules" / ".bin"


def _buf_env(extra_bin: Path | None = None) -> dict[str, str]:
    """PATH with the plugins buf's templates name (`local: protoc-gen-...`) first."""
    paths = [str(_npm_tools())]
    if extra_bin is not None:
        paths.insert(0, str(extra_bin))
    return {**os.environ, "PATH": os.pathsep.join([*paths, os.environ.get("PATH", "")])}


def _buf_generate(template: str, source: Path, out: Path, env: dict[str, str], *paths: str) -> None:
    command = [
        str(NPM_TOOLS / "node_modules" / ".bin" / "buf"),
        "generate",
        str(source),
        "--template",
        str(BUF_TEMPLATES / template),
        "--output",
        str(out),
    ]
    for path in paths:
        command += ["--path", str(source / path)]
    _run(command, cwd=ROOT, env=env)


def generate_go(out: Path, scratch: Path) -> None:
    # The plugins are built from client_stubs/go's own go.mod, so their versions
    # are the `tool` lines there (and go.sum checks what was downloaded).
    plugins = scratch / "go-bin"
    _run(["go", "build", "-o", f"{plugins}{os.sep}", *GO_PLUGINS], cwd=STUBS / "go")
    tree = scratch / "go"
    _buf_generate("go.yaml", PROTO_ROOT, tree, _buf_env(plugins), *OWN_PROTOS)
    shutil.move(tree / "gen", out)


def generate_typescript(out: Path, scratch: Path) -> None:
    _check_protobuf_es_runtime()
    env = _buf_env()
    tree = scratch / "typescript"
    _buf_generate("typescript.yaml", PROTO_ROOT, tree, env, *OWN_PROTOS)
    google = sorted({*GOOGLE_RPC_FILES, *GOOGLE_LONGRUNNING_FILES})
    _buf_generate("typescript.yaml", GOOGLE_PROTOS, tree, env, *google)
    shutil.move(tree / "src" / "gen", out)


def _check_protobuf_es_runtime() -> None:
    """Generated code and the runtime it imports must be the same protobuf-es release."""
    generator = json.loads(
        (NPM_TOOLS / "node_modules" / "@bufbuild" / "protoc-gen-es" / "package.json").read_text()
    )["version"]
    package = json.loads((STUBS / "typescript" / "package.json").read_text())
    wanted = package.get("dependencies", {}).get("@bufbuild/protobuf", "")
    if wanted.lstrip("^~") != generator:
        raise SystemExit(
            f"client_stubs/typescript depends on @bufbuild/protobuf {wanted!r}, but the "
            f"generator is protoc-gen-es {generator}: make them the same release"
        )


TARGETS = (
    Target("python", STUBS / "python" / "imagegate", generate_python),
    Target("go", STUBS / "go" / "gen", generate_go),
    Target("typescript", STUBS / "typescript" / "src" / "gen", generate_typescript),
)


def files_under(root: Path) -> set[Path]:
    if not root.exists():
        return set()
    return {
        p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def vendor_google_protos(check: bool) -> bool:
    """Copy (or with ``check``, compare) the google.longrunning files into
    protos/third_party/googleapis; False when a committed copy is stale."""
    _npm_tools()
    stale = []
    for name in GOOGLE_LONGRUNNING_FILES:
        source, copy = GOOGLE_PROTOS / name, VENDORED_PROTOS / name
        if copy.exists() and filecmp.cmp(source, copy, shallow=False):
            continue
        if check:
            stale.append(name)
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    if stale:
        where = VENDORED_PROTOS.relative_to(ROOT)
        print(f"{where} is stale; run `python tools/gen_stubs.py`:", *stale, sep="\n  ")
    return not stale


def stale_files(fresh: Path, committed: Path) -> list[str]:
    """Files missing, extra or different in ``committed`` compared with ``fresh``."""
    have, want = files_under(committed), files_under(fresh)
    changed = {p for p in have & want if not filecmp.cmp(fresh / p, committed / p, shallow=False)}
    return sorted(str(p) for p in (have ^ want) | changed)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if committed stubs differ")
    parser.add_argument(
        "--only",
        action="append",
        choices=[t.name for t in TARGETS],
        help="regenerate or check only this language (repeatable)",
    )
    args = parser.parse_args()
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    failed = not vendor_google_protos(args.check)
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            scratch = Path(tmp) / target.name
            scratch.mkdir()
            fresh = scratch / "fresh"
            target.generate(fresh, scratch)
            where = target.folder.relative_to(ROOT)
            if args.check:
                stale = stale_files(fresh, target.folder)
                if stale:
                    failed = True
                    print(
                        f"{where} is stale; run `python tools/gen_stubs.py`:",
                        *stale,
                        sep="\n  ",
                    )
                else:
                    print(f"{where} is up to date")
                continue
            shutil.rmtree(target.folder, ignore_errors=True)
            shutil.copytree(fresh, target.folder)
            print(f"regenerated {where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
