"""Reading and writing the clients file, TOML or YAML by its extension.

Reading (:mod:`imagegate_server.livefiles.documents`) gives both the raw data (what
the CLI edits and writes back, so values keep the form the operator wrote) and the
validated :class:`ClientsDocument`.
Writing is atomic (a temporary file in the same directory, then a rename) and keeps
the file's mode; new files are 0600, since they map token hashes to clients.
Comments of a hand-written file do not survive a rewrite by the CLI.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import tomli_w
import yaml
from pydantic import ValidationError

from imagegate_server.clients.schema import ClientsDocument, cross_check, describe
from imagegate_server.livefiles import documents
from imagegate_server.livefiles.documents import DocumentError, Format

NEW_FILE_MODE = 0o600


class ClientsFileError(DocumentError):
    """The clients file is unreadable or invalid. ``str()`` is one line: the file, the
    field (dotted path) and the problem; never a value from the file."""


@dataclass(frozen=True)
class LoadedFile:
    data: dict[str, Any]
    """The parsed file as plain data (TOML/YAML types)."""
    document: ClientsDocument


def file_format(path: Path) -> Format:
    return documents.file_format(path, ClientsFileError)


def load(path: Path) -> LoadedFile:
    """Read, parse and validate ``path``. Raises :class:`ClientsFileError`."""
    fmt = file_format(path)
    return parse(path, documents.read_bytes(path, ClientsFileError), fmt)


def parse(path: Path, raw: bytes, fmt: Format) -> LoadedFile:
    data = documents.decode(path, raw, fmt, ClientsFileError, "with 'defaults' and 'clients'")
    try:
        document = ClientsDocument.model_validate(data)
    except ValidationError as exc:
        where, problem = describe(exc)
        raise ClientsFileError(path, where, problem) from None
    duplicate = cross_check(document)
    if duplicate is not None:
        raise ClientsFileError(path, *duplicate)
    return LoadedFile(data=data, document=document)


def render(data: dict[str, Any], fmt: Format) -> bytes:
    """``data`` as file content in ``fmt``."""
    if fmt == "toml":
        return tomli_w.dumps(data).encode("utf-8")
    text = yaml.safe_dump(_yaml_plain(data), sort_keys=False, allow_unicode=True)
    return text.encode("utf-8")


def _yaml_plain(value: Any) -> Any:
    # PyYAML has no Decimal; a float is fine when it round-trips exactly.
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if Decimal(str(as_float)) == value else str(value)
    if isinstance(value, dict):
        return {key: _yaml_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_yaml_plain(item) for item in value]
    return value


def write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` in one rename, keeping its mode (0600 if new).

    A symlinked path is followed, so the link stays and its target is replaced.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
