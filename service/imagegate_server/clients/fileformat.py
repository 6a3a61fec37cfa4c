"""Reading and writing the clients file, TOML or YAML by its extension.

Reading gives both the raw data (what the CLI edits and writes back, so values
keep the form the operator wrote) and the validated :class:`ClientsDocument`.
Writing is atomic (a temporary file in the same directory, then a rename) and keeps
the file's mode; new files are 0600, since they map token hashes to clients.
Comments of a hand-written file do not survive a rewrite by the CLI.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import tomli_w
import yaml
from pydantic import ValidationError

from imagegate_server.clients.schema import ClientsDocument, cross_check, describe

Format = Literal["toml", "yaml"]
_SUFFIXES: dict[str, Format] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
NEW_FILE_MODE = 0o600


class ClientsFileError(Exception):
    """The clients file is unreadable or invalid. ``str()`` is one line: the file, the
    field (dotted path) and the problem; never a value from the file."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        shown = repr(str(path)[:200])
        super().__init__(f"{shown}: {where}: {problem}" if where else f"{shown}: {problem}")


@dataclass(frozen=True)
class LoadedFile:
    data: dict[str, Any]
    """The parsed file as plain data (TOML/YAML types)."""
    document: ClientsDocument


def file_format(path: Path) -> Format:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ClientsFileError(
            path, "", "unknown format: the name must end in .toml, .yaml or .yml"
        )
    return fmt


def load(path: Path) -> LoadedFile:
    """Read, parse and validate ``path``. Raises :class:`ClientsFileError`."""
    fmt = file_format(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ClientsFileError(path, "", "no such file") from None
    except OSError as exc:
        raise ClientsFileError(
            path, "", f"cannot read it ({exc.strerror or 'I/O error'})"
        ) from None
    return parse(path, raw, fmt)


def parse(path: Path, raw: bytes, fmt: Format) -> LoadedFile:
    data = _decode(path, raw, fmt)
    try:
        document = ClientsDocument.model_validate(data)
    except ValidationError as exc:
        where, problem = describe(exc)
        raise ClientsFileError(path, where, problem) from None
    duplicate = cross_check(document)
    if duplicate is not None:
        raise ClientsFileError(path, *duplicate)
    return LoadedFile(data=data, document=document)


def _decode(path: Path, raw: bytes, fmt: Format) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientsFileError(path, "", "is not UTF-8 text") from None
    if fmt == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's messages name the position, not the content.
            message = " ".join(str(exc).split())[:200]
            raise ClientsFileError(path, "", f"not valid TOML: {message}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        # The mark only: PyYAML's own text quotes the offending line.
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ClientsFileError(path, "", f"not valid YAML{at}") from None
    except yaml.YAMLError:
        raise ClientsFileError(path, "", "not valid YAML") from None
    if data is None:  # an empty YAML file: no clients
        return {}
    if not isinstance(data, dict):
        raise ClientsFileError(path, "", "must be a mapping with 'defaults' and 'clients'")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of duplicate keys; in a clients file that hides a mistake."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


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
