"""The upstreams file: read, checked, its keys and prices loaded, kept current.

A loaded version is an :class:`UpstreamSet`: one :class:`UpstreamSpec` per upstream
(its transport configuration, key included, and what routing needs: models, weight,
priority, ceilings, prices) and the files it read besides the upstreams file (key
files, secrets, price files), which are watched too (:mod:`imagegate_server.livefiles`).
A bad version keeps the last good one and logs one error line naming the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import ValidationError

from imagegate_server.limits import RateLimit
from imagegate_server.livefiles import documents
from imagegate_server.livefiles.documents import DocumentError
from imagegate_server.livefiles.watch import LiveFile
from imagegate_server.pricing import PricesFileError, PriceTable, load_prices
from imagegate_server.routing.keys import KeyProblem, key_path, read_key
from imagegate_server.routing.schema import (
    OPENAI_BASE_URL,
    UpstreamEntry,
    UpstreamsDocument,
    inline_secret,
    looks_like_key,
)
from imagegate_server.settings import Settings, secrets_directory
from imagegate_server.upstream import RetryPolicy, UpstreamConfig
from imagegate_server.upstream.azure import V1_PREVIEW, AzureConfig

log = logging.getLogger(__name__)


class UpstreamsFileError(DocumentError):
    """The upstreams file is unreadable or invalid: one line, the file and the field."""


@dataclass(frozen=True)
class UpstreamSpec:
    config: UpstreamConfig
    models: tuple[str, ...] | None
    """Names or glob patterns it serves; None: every model (Azure: its deployments)."""
    weight: int = 1
    priority: int = 0
    """Lower first: an upstream is tried only when none of a lower priority can be."""
    images_per_minute: int | None = None
    requests_per_minute: int | None = None
    prices: PriceTable | None = None
    """Its own prices (the gateway's table with its price file over it); None: the
    gateway's table."""

    @property
    def name(self) -> str:
        return self.config.name

    def ceilings(self, cost: int = 1) -> tuple[RateLimit, ...]:
        """Its own ceilings, for a call of ``cost`` images (none when it has none)."""
        rates = []
        if self.requests_per_minute is not None:
            rpm = self.requests_per_minute
            rates.append(RateLimit("upstream_requests_per_minute", rpm, rpm, 1, ""))
        if self.images_per_minute is not None:
            ipm = self.images_per_minute
            rates.append(RateLimit("upstream_images_per_minute", ipm, ipm, cost, ""))
        return tuple(rates)

    def serves(self, model: str) -> bool:
        azure = self.config.azure
        if azure is not None:
            return model in azure.deployments
        return self.models is None or any(fnmatchcase(model, p) for p in self.models)


@dataclass(frozen=True)
class UpstreamSet:
    upstreams: tuple[UpstreamSpec, ...]
    files: tuple[Path, ...] = ()
    """The other files this version read (keys, prices): a change to one reloads."""
    from_file: bool = True
    """False for the one upstream of the single-key settings."""

    def __len__(self) -> int:
        return len(self.upstreams)


def transport(settings: Settings, **fields: object) -> UpstreamConfig:
    """An upstream's configuration: ``fields`` plus the transport settings every
    upstream shares (timeouts, retries, pool size, HTTP/2, answer bounds)."""
    return UpstreamConfig(
        connect_timeout_s=settings.connect_timeout_s,
        retry=RetryPolicy(
            settings.max_retries, settings.retry_backoff_s, settings.retry_backoff_max_s
        ),
        max_connections=settings.max_connections,
        http2=settings.http2,
        unknown_model_answer_bytes=settings.upstream_unknown_model_answer_bytes,
        error_body_bytes=settings.upstream_error_body_bytes,
        **fields,  # type: ignore[arg-type]
    )


def load_upstreams(path: Path, settings: Settings) -> UpstreamSet:
    """Read, check and resolve the file at ``path``. Raises :class:`UpstreamsFileError`."""
    fmt = documents.file_format(path, UpstreamsFileError)
    raw = documents.read_bytes(path, UpstreamsFileError)
    data = documents.decode(path, raw, fmt, UpstreamsFileError, "with [upstreams.NAME] tables")
    secret = inline_secret(data)
    if secret is not None:
        raise UpstreamsFileError(
            path,
            secret,
            "looks like a key or token: keys are never written in the upstreams file; "
            "name where the key is with key_file, key_secret or key_env",
        )
    try:
        document = UpstreamsDocument.model_validate(data)
    except ValidationError as exc:
        where, problem = documents.describe(exc, looks_like_key)
        raise UpstreamsFileError(path, where, problem) from None
    secrets_dir = secrets_directory()
    specs = []
    files: list[Path] = []
    for name, entry in document.upstreams.items():
        specs.append(_spec(path, name, entry, settings, secrets_dir))
        files += [f for f in (key_path(entry, secrets_dir), entry.prices_file) if f is not None]
    return UpstreamSet(tuple(specs), tuple(files))


def _spec(
    path: Path, name: str, entry: UpstreamEntry, settings: Settings, secrets_dir: Path
) -> UpstreamSpec:
    where = f"upstreams.{name}"
    try:
        key = read_key(entry, secrets_dir)
    except KeyProblem as problem:
        raise UpstreamsFileError(path, f"{where}.{problem.where}", problem.problem) from None
    prices = None
    if entry.prices_file is not None:
        try:
            prices = load_prices(settings.prices_file, entry.prices_file)
        except PricesFileError as exc:
            raise UpstreamsFileError(path, f"{where}.prices_file", str(exc)) from None
    azure = None
    if entry.kind == "azure":
        assert entry.deployments is not None  # the schema wants them
        route = entry.route or "deployments"
        azure = AzureConfig(
            deployments=dict(entry.deployments),
            api_version=entry.api_version or (V1_PREVIEW if route == "v1" else ""),
            route=route,
            auth=entry.auth or "api-key",
        )
    config = transport(
        settings,
        name=name,
        kind=entry.kind,
        base_url=entry.base_url or OPENAI_BASE_URL,
        api_key=key,
        organization=entry.organization,
        project=entry.project,
        azure=azure,
    )
    return UpstreamSpec(
        config,
        entry.models,
        entry.weight,
        entry.priority,
        entry.images_per_minute,
        entry.requests_per_minute,
        prices,
    )


class UpstreamsFile(LiveFile[UpstreamSet]):
    """The upstreams file, kept current while started (see :class:`LiveFile`)."""

    def __init__(self, path: Path, settings: Settings) -> None:
        super().__init__(
            path,
            lambda file: load_upstreams(file, settings),
            setting="IMAGEGATE_UPSTREAMS_FILE",
            what="upstreams file",
            log=log,
            reload_s=settings.upstreams_reload_s,
            depends_on=lambda loaded: loaded.files,
            summary=lambda loaded: {"upstreams": [spec.name for spec in loaded.upstreams]},
        )
