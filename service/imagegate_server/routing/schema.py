"""The upstreams file's one schema (TOML and YAML alike), as pydantic models.

Every field has a validator with an operator-facing message, so a mistake reads
``upstreams.azure-eu.api_version: is required for the deployments route`` and never
quotes the offending value. A key is never in the file: each upstream names where
its key is (``key_file``, ``key_secret`` or ``key_env``), and a file with anything
that looks like a key or token in it, in any field, is refused whole
(:func:`inline_secret`), before the rest is looked at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from imagegate_server.livefiles import documents

_MODEL = re.compile(r"[^\s]{1,200}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SECRET_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,200}")
# What a key or token looks like: OpenAI's sk-... keys, and any long run of letters
# and digits (Azure's 32 hex digits or 84 characters, an Entra ID JWT's segments).
# Names, ids, hosts and deployment names of the file are shorter runs between
# separators (OpenAI's org-/proj_ ids have 24 characters after their prefix).
_KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_-]{8,}|[A-Za-z0-9]{32,}")
_KEY_FIELDS = frozenset({"key", "api_key", "apikey", "api-key", "token", "secret", "password"})
KEY_REFERENCES = ("key_file", "key_secret", "key_env")


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("imagegate", message)


def looks_like_key(text: str) -> bool:
    return _KEY_LIKE.search(text) is not None


def inline_secret(data: object, where: str = "") -> str | None:
    """The dotted path of the first value (or key) of ``data`` that holds a key or
    token inline, or of a field named like one; None when there is none."""
    for path, key, value in _walk(data, where):
        if key is not None and key.lower() in _KEY_FIELDS:
            return path
        if key is not None and looks_like_key(key):
            return path.rsplit(".", 1)[0] + ".<invalid key>" if "." in path else "<invalid key>"
        if isinstance(value, str) and looks_like_key(value):
            return path
    return None


def _walk(data: object, where: str) -> Iterator[tuple[str, str | None, object]]:
    if isinstance(data, dict):
        for key, value in data.items():
            name = str(key)
            shown = name if len(name) <= 64 and not looks_like_key(name) else "<invalid key>"
            path = f"{where}.{shown}" if where else shown
            yield path, name, value
            yield from _walk(value, path)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            path = f"{where}[{index}]"
            yield path, None, item
            yield from _walk(item, path)


def _name(value: object) -> str:
    if not isinstance(value, str) or not documents.NAME.fullmatch(value):
        raise _problem(documents.name_rule("upstream"))
    return value


def _base_url(value: object) -> str:
    if not isinstance(value, str):
        raise _problem("must be an http:// or https:// URL")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _problem("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise _problem(
            "must not hold credentials: name the key with key_file, key_secret or key_env"
        )
    if parts.query or parts.fragment:
        raise _problem("must have no query or fragment")
    return value.strip().rstrip("/")


MAX_UPSTREAMS = 64
"""Upstreams of one file: each is a connection pool, a breaker and a metrics label."""
MAX_MODELS = 200
"""Models (or deployments) of one upstream: every call's routing looks at them."""


def _models(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_MODELS:
        raise _problem(f"must be a list of 1 to {MAX_MODELS} model names or glob patterns")
    if not all(isinstance(item, str) and _MODEL.fullmatch(item) for item in value):
        raise _problem("model names and patterns must be non-empty, without spaces")
    return tuple(value)


def _deployments(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_MODELS:
        raise _problem(f"must be a table of 1 to {MAX_MODELS} model = deployment name")
    for model, deployment in value.items():
        if not isinstance(model, str) or not _MODEL.fullmatch(model) or "*" in model:
            raise _problem("each model must be an exact name (no spaces, no globs)")
        if not isinstance(deployment, str) or not _HEADER_VALUE.fullmatch(deployment):
            raise _problem("each deployment must be a name of 1-200 printable characters")
    return dict(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise _problem("must be an integer from 1 to 1000000")
    return value


def _priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise _problem("must be an integer from 0 (tried first) to 1000")
    return value


def _weight(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise _problem("must be an integer from 1 to 10000")
    return value


def _path(value: object) -> Path:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise _problem("must be a file path")
    return Path(value.strip())


def _env_name(value: object) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise _problem("must be an environment variable name")
    return value


def _secret_name(value: object) -> str:
    if not isinstance(value, str) or not _SECRET_NAME.fullmatch(value) or value in (".", ".."):
        raise _problem("must be the name of a file in the secrets directory (no '/')")
    return value


def _header_value(value: object) -> str:
    if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
        raise _problem("must be 1-200 printable characters without spaces")
    return value


Name = Annotated[str, PlainValidator(_name)]
BaseUrl = Annotated[str, PlainValidator(_base_url)]
Models = Annotated[tuple[str, ...], PlainValidator(_models)]
Deployments = Annotated[dict[str, str], PlainValidator(_deployments)]
Count = Annotated[int, PlainValidator(_count)]
Priority = Annotated[int, PlainValidator(_priority)]
Weight = Annotated[int, PlainValidator(_weight)]
FilePath = Annotated[Path, PlainValidator(_path)]
EnvName = Annotated[str, PlainValidator(_env_name)]
SecretName = Annotated[str, PlainValidator(_secret_name)]
HeaderValue = Annotated[str, PlainValidator(_header_value)]

OPENAI_BASE_URL = "https://api.openai.com/v1"


class _Strict(BaseModel):
    # Unknown fields are errors: a misspelt ceiling must not silently mean "none".
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamEntry(_Strict):
    kind: Literal["openai", "azure", "compatible"] = "openai"
    base_url: BaseUrl | None = None
    """OpenAI's (the default for kind openai) or a compatible server's ``.../v1``; for
    Azure, the resource endpoint ``https://NAME.openai.azure.com``."""
    key_file: FilePath | None = None
    key_secret: SecretName | None = None
    key_env: EnvName | None = None
    organization: HeaderValue | None = None
    project: HeaderValue | None = None
    auth: Literal["api-key", "bearer"] | None = None
    api_version: HeaderValue | None = None
    route: Literal["deployments", "v1"] | None = None
    deployments: Deployments | None = None
    models: Models | None = None
    weight: Weight = 1
    priority: Priority = 0
    images_per_minute: Count | None = None
    requests_per_minute: Count | None = None
    prices_file: FilePath | None = None

    @model_validator(mode="after")
    def _consistent(self) -> UpstreamEntry:
        references = [name for name in KEY_REFERENCES if getattr(self, name) is not None]
        if len(references) != 1:
            raise _problem("needs exactly one of key_file, key_secret and key_env")
        if self.kind == "azure":
            self._check_azure()
        else:
            for name in ("auth", "api_version", "route", "deployments"):
                if getattr(self, name) is not None:
                    raise _problem(f'{name} is for kind = "azure" only')
            if self.kind == "compatible" and self.base_url is None:
                raise _problem('kind "compatible" needs its base_url')
        return self

    def _check_azure(self) -> None:
        if self.base_url is None:
            raise _problem('kind "azure" needs base_url: the resource endpoint')
        if self.deployments is None:
            raise _problem('kind "azure" needs deployments: model = deployment name')
        if self.models is not None:
            raise _problem("an Azure upstream serves the models of its deployments: no models")
        if self.organization is not None or self.project is not None:
            raise _problem("organization and project are OpenAI's; Azure has none")
        if (self.route or "deployments") == "deployments" and self.api_version is None:
            raise _problem("api_version is required for the deployments route")


class UpstreamsDocument(_Strict):
    upstreams: dict[Name, UpstreamEntry]

    @model_validator(mode="after")
    def _some(self) -> UpstreamsDocument:
        if not self.upstreams:
            raise _problem("lists no upstream: write one [upstreams.NAME] table at least")
        if len(self.upstreams) > MAX_UPSTREAMS:
            raise _problem(f"lists more than {MAX_UPSTREAMS} upstreams")
        return self
