"""Reading an operator's file, TOML or YAML by its extension, into plain data.

Problems are one :class:`DocumentError` line: the file, the field (a dotted path)
and what is wrong, never a value from the file (it may hold a token or a key).
YAML is read with a safe loader that refuses duplicate keys (PyYAML keeps the last
of them, which hides a mistake); TOML refuses them itself.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import ValidationError

from imagegate_server.wording import plural

Format = Literal["toml", "yaml"]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What an operator's file may name a thing (a client, an upstream): it shows in logs,
metrics labels and Redis keys."""


def name_rule(what: str) -> str:
    """The rule of :data:`NAME`, for a validator's message about ``what`` names."""
    return (
        f"{what} names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )


SUFFIXES: dict[str, Format] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


class DocumentError(Exception):
    """An operator file is unreadable or invalid. ``str()`` is one line: the file, the
    field (dotted path) and the problem; never a value from the file."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        shown = repr(str(path)[:200])
        super().__init__(f"{shown}: {where}: {problem}" if where else f"{shown}: {problem}")


E = TypeVar("E", bound=DocumentError)


def file_format(path: Path, error: type[E]) -> Format:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise error(path, "", "unknown format: the name must end in .toml, .yaml or .yml")
    return fmt


def read_bytes(path: Path, error: type[E]) -> bytes:
    """The file's content; ``error`` for a missing or unreadable file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(path, "", "no such file") from None
    except OSError as exc:
        raise error(path, "", f"cannot read it ({exc.strerror or 'I/O error'})") from None


def decode(path: Path, raw: bytes, fmt: Format, error: type[E], shape: str) -> dict[str, Any]:
    """``raw`` parsed as ``fmt`` into a mapping (an empty YAML file: ``{}``); ``shape``
    says what the top level must be, for the error when it is not a mapping."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(path, "", "is not UTF-8 text") from None
    if fmt == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's messages name the position, not the content.
            message = " ".join(str(exc).split())[:200]
            raise error(path, "", f"not valid TOML: {message}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        # The mark only: PyYAML's own text quotes the offending line.
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(path, "", f"not valid YAML{at}") from None
    except yaml.YAMLError:
        raise error(path, "", "not valid YAML") from None
    if data is None:  # an empty YAML file
        return {}
    if not isinstance(data, dict):
        raise error(path, "", f"must be a mapping {shape}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of duplicate keys; in an operator's file that hides a mistake."""


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


def describe(error: ValidationError, hidden: Callable[[str], bool]) -> tuple[str, str]:
    """``(where, problem)`` of a pydantic error's first problem: a dotted field path
    and a short message, never the input value. A key of the file for which
    ``hidden`` is true (it looks like a secret) shows as ``<invalid key>``.

    Validators raise ``PydanticCustomError("imagegate", message)`` for their own
    operator-facing messages; pydantic's own kinds get a short wording here."""
    errors = error.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = list(first["loc"])
    kind = first["type"]
    if loc and loc[-1] == "[key]":
        loc.pop()  # the key itself is the subject
    where = _path(loc, hidden)
    if kind == "imagegate":
        problem = first["msg"]
    elif kind == "extra_forbidden":
        problem = "unknown field"
    elif kind == "missing":
        problem = "is required"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        problem = "must be a table (a mapping)"
    else:
        problem = "is not valid"
    if len(errors) > 1:
        problem += f" (and {plural(len(errors) - 1, 'more problem', 'more problems')})"
    return where, problem


def _path(loc: list[int | str], hidden: Callable[[str], bool]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            text = str(item)
            # A key is file content; keep it short, and never echo something secret-like.
            if len(text) > 64 or hidden(text):
                text = "<invalid key>"
            parts.append(text if not parts else f".{text}")
    return "".join(parts)
