"""The descriptors ghz needs to call the gateway: ``buf build`` of protos/ (the pinned
buf in tools/buf) when this runs from a checkout with buf installed, else the same
descriptors taken from the Python stubs; both with grpc.health.v1 for the floor call.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

REPO_ROOT = Path(__file__).resolve().parents[3]


def descriptor_set(out: Path) -> str:
    """Write a FileDescriptorSet for ghz to ``out``; say where its descriptors came from.

    ``buf build`` of protos/ when this runs from a checkout with the pinned buf
    installed (``cd tools/buf && npm ci``), else the descriptors compiled into the
    Python stubs, which ``tools/gen_stubs.py --check`` keeps equal to protos/. Both get
    grpc.health.v1 appended (a FileDescriptorSet is a repeated field, so two
    serialized sets concatenate into one), for the floor call.
    """
    from grpc_health.v1 import health_pb2

    health = _files_set([health_pb2.DESCRIPTOR]).SerializeToString()
    buf = _buf_binary()
    if buf is not None:
        image = out.with_suffix(".buf.binpb")
        completed = subprocess.run(  # noqa: S603 (the repository's pinned buf)
            [buf, "build", "-o", str(image)],
            cwd=REPO_ROOT / "protos",
            capture_output=True,
            timeout=120,
            check=False,
        )
        if completed.returncode == 0 and image.is_file():
            out.write_bytes(image.read_bytes() + health)
            return f"descriptors from `buf build` of protos/ ({_shown(buf)})"
    from imagegate.v1 import images_service_pb2

    out.write_bytes(_files_set([images_service_pb2.DESCRIPTOR]).SerializeToString() + health)
    reason = "buf is not installed" if buf is None else "`buf build` failed"
    return f"descriptors from the Python stubs ({reason})"


def _shown(path: str) -> str:
    """A path inside the checkout relative to it (reports name no home directories)."""
    try:
        return str(Path(path).relative_to(REPO_ROOT))
    except ValueError:
        return path


def _buf_binary() -> str | None:
    pinned = REPO_ROOT / "tools" / "buf" / "node_modules" / ".bin" / "buf"
    if (REPO_ROOT / "protos" / "buf.yaml").is_file():
        if pinned.is_file():
            return str(pinned)
        return shutil.which("buf")
    return None  # an installed package, not a checkout: no protos/ to build


def _files_set(files: Sequence[FileDescriptor]) -> descriptor_pb2.FileDescriptorSet:
    """Every file of ``files`` and their imports, imports first."""
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    for file in files:
        visit(file)
    result = descriptor_pb2.FileDescriptorSet()
    for file in ordered:
        file.CopyToProto(result.file.add())
    return result
