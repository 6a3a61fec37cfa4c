"""Where images go on disk, and writing them without leaving half-written files.

Naming, from ``-o out.png``:
  - one final image:      out.png
  - n final images:       out-1.png, out-2.png, ... (1-based, in the result's order)
  - partial images:       out.partial-1.png, out.partial-2.png, ... numbered in
                          arrival order over the whole call (with n > 1 OpenAI does
                          not always say which image a partial previews)
Without an extension (``-o out``) the extension follows the image format: the
result's output_format, else the file's magic bytes, else ``.png``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagegate.v1 import params_pb2

from imagegate_server.imageformat import read_image_info, sniff_format

EXTENSIONS: dict[int, str] = {
    params_pb2.OUTPUT_FORMAT_PNG: ".png",
    params_pb2.OUTPUT_FORMAT_JPEG: ".jpg",
    params_pb2.OUTPUT_FORMAT_WEBP: ".webp",
    params_pb2.OUTPUT_FORMAT_GIF: ".gif",
    params_pb2.OUTPUT_FORMAT_SVG: ".svg",
}
_SNIFFED = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif"}


class OutputError(Exception):
    """A file that could not be written."""


def image_kind(data: bytes) -> str:
    """A short name of the format for messages: png, jpeg, webp, gif, svg or data."""
    fmt = sniff_format(data[:16])
    if fmt is not None:
        return fmt
    if _looks_like_svg(data):
        return "svg"
    return "data"


def describe(data: bytes) -> str:
    """``1024x1024 png, 1.2 MiB``: what a user wants to know about a written image."""
    kind = image_kind(data)
    info = read_image_info(data[:65536]) if kind not in ("svg", "data") else None
    dims = f"{info.width}x{info.height} " if info and info.width and info.height else ""
    return f"{dims}{kind}, {human_size(len(data))}"


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _looks_like_svg(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower()


def extension_for(data: bytes, output_format: int = params_pb2.OUTPUT_FORMAT_UNSPECIFIED) -> str:
    if output_format in EXTENSIONS:
        return EXTENSIONS[output_format]
    fmt = sniff_format(data[:16])
    if fmt is not None:
        return _SNIFFED[fmt]
    return ".svg" if _looks_like_svg(data) else ".png"


@dataclass
class OutputPlan:
    """Turns ``-o`` into the path of each final and partial image."""

    base: Path
    partials_written: int = 0

    def _split(self, ext: str) -> tuple[Path, str]:
        # The user's own extension wins; otherwise the format's.
        if self.base.suffix:
            return self.base.with_suffix(""), self.base.suffix
        return self.base, ext

    def final_path(self, index: int, count: int, ext: str) -> Path:
        stem, suffix = self._split(ext)
        if count > 1:
            stem = stem.with_name(f"{stem.name}-{index + 1}")
        return stem.with_name(stem.name + suffix)

    def next_partial_path(self, ext: str) -> Path:
        self.partials_written += 1
        stem, suffix = self._split(ext)
        return stem.with_name(f"{stem.name}.partial-{self.partials_written}{suffix}")


def write_file(path: Path, data: bytes) -> None:
    """Writes via a temporary file and a rename, so an interrupted run leaves no torn image."""
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temp_name, 0o666 & ~_umask())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def _umask() -> int:
    # mkstemp creates 0600 files; a normal output file should get the usual mode.
    current = os.umask(0)
    os.umask(current)
    return current
