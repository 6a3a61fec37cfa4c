"""Settings of the upstream: which one (a key and base URL, or the upstreams file),
its circuits, which models calls get, and how each call to it is bounded (timeouts,
retries, the connection pool, answer sizes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from imagegate_server.errors import StartupError
from imagegate_server.settings.units import MIB

OPENAI_API_HOST = "api.openai.com"


class UpstreamChoiceSettings(BaseModel):
    """Which upstream calls go to, with which key, and which models they name."""

    openai_api_key: SecretStr | None = None
    """The OpenAI key (also from ``imagegate_openai_api_key`` in the secrets directory).
    Unset, and no key file: the embedded emulator is the upstream. Set but empty: an error."""
    openai_api_key_file: Path | None = None
    """A file holding the key (a mounted secret); read once at start-up. Missing,
    unreadable or empty: an error."""
    openai_base_url: str = "https://api.openai.com/v1"
    """The Images API base URL (any OpenAI-compatible server). Ignored in emulator mode."""
    openai_organization: str | None = None
    """Sent as ``OpenAI-Organization`` when set."""
    openai_project: str | None = None
    """Sent as ``OpenAI-Project`` when set."""

    upstreams_file: Path | None = None
    """The upstreams file (TOML or YAML, by extension): several upstreams (OpenAI
    organisations and projects, Azure OpenAI deployments, compatible servers), each
    with its key by reference, its models, weight, priority and ceilings; see
    docs/upstreams.example.toml. Re-read when it, or a key or price file it names,
    changes. Set, it replaces ``openai_api_key``, ``openai_api_key_file``,
    ``openai_base_url``, ``openai_organization`` and ``openai_project`` (unset, they
    are the one upstream, named ``default``)."""
    upstreams_reload_s: float = Field(default=2.0, gt=0)
    """How often the upstreams file (and the files it names) is checked for changes."""
    upstream_circuit_failures: int = Field(default=5, ge=1, le=1000)
    """An upstream of the upstreams file whose calls fail this many times in a row
    (connect errors, 429, 401, 5xx, timeouts, broken answers), within
    ``upstream_circuit_window_s``, gets no calls for ``upstream_circuit_open_s``."""
    upstream_circuit_window_s: float = Field(default=60.0, gt=0)
    """The failures that open a circuit must fall within this many seconds."""
    upstream_circuit_open_s: float = Field(default=30.0, gt=0)
    """How long an open circuit keeps calls off its upstream; then one call probes it
    (half-open): success closes the circuit, failure opens it again."""

    default_model: str = "gpt-image-2"
    """Model for generations and edits that name none (the live API wants one)."""
    default_variation_model: str = "dall-e-2"
    """Model for variations that name none: dall-e-2 is the only model that ever
    served them, and OpenAI retired it, so variations need a compatible server (such
    as the emulator) that still offers it."""
    refuse_retired_models: Literal["auto", "on", "off"] = "auto"
    """Answer calls for a model past its OpenAI shutdown date locally (NOT_FOUND with
    the replacement) instead of sending them upstream. ``auto``: on when the upstream
    is OpenAI itself (``api.openai.com``), off for the emulator and other compatible
    servers, which may still serve retired models."""
    # NoDecode: the validator below reads the variable's text itself, so that "a,b"
    # works; pydantic-settings would otherwise insist on JSON and fail on it.
    extra_parameters: Annotated[frozenset[str], NoDecode] = frozenset()
    """Allowlist of ``extra_parameters`` keys forwarded upstream (``a,b`` or a JSON list)."""

    @field_validator("extra_parameters", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # Accept "a,b" as well as a JSON list.
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(
                    "expected a JSON list of names, or names separated by commas"
                ) from None
        return frozenset(item.strip() for item in value.split(",") if item.strip())

    def refuses_retired_models(self, *, emulator: bool) -> bool:
        """Whether calls for retired models are answered locally (see the field)."""
        if self.refuse_retired_models != "auto":
            return self.refuse_retired_models == "on"
        return not emulator and urlsplit(self.openai_base_url).hostname == OPENAI_API_HOST

    def emulated(self) -> bool:
        """Whether the embedded emulator is the upstream: no key and no upstreams file.

        Raises :class:`StartupError` for a key source that is set but gives no key."""
        return self.upstreams_file is None and self.api_key() is None

    def api_key(self) -> SecretStr | None:
        """The configured key (variable first, then the key file), or None for none.

        Raises :class:`StartupError` for a key source that is set but gives no key.
        """
        if self.openai_api_key is not None:
            key = self.openai_api_key.get_secret_value().strip()
            if not key:
                raise StartupError(
                    "IMAGEGATE_OPENAI_API_KEY (or imagegate_openai_api_key in the "
                    "secrets directory or .env) is set but empty; set the key or unset it"
                )
            return SecretStr(key)
        if self.openai_api_key_file is not None:
            path = self.openai_api_key_file
            try:
                key = path.read_text().strip()
            except (OSError, UnicodeDecodeError):
                raise StartupError(
                    f"IMAGEGATE_OPENAI_API_KEY_FILE: cannot read the key file {str(path)[:200]!r}"
                ) from None
            if not key:
                raise StartupError(
                    f"IMAGEGATE_OPENAI_API_KEY_FILE: the key file {str(path)[:200]!r} is empty"
                )
            return SecretStr(key)
        return None


class UpstreamCallsSettings(BaseModel):
    """How one call to the upstream is bounded: time, retries, connections, answer bytes."""

    upstream_timeout_s: float = Field(default=300.0, gt=0)
    """Upper bound of one upstream call; the caller's deadline may shorten it."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Upper bound of establishing a connection to the upstream."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of connect errors and 429s (never of anything that may have billed)."""
    retry_backoff_s: float = Field(default=0.5, ge=0)
    """First backoff; doubles per retry, with full jitter, unless retry-after says more."""
    retry_backoff_max_s: float = Field(default=20.0, ge=0)
    """Cap of one backoff (retry-after beyond it ends retrying)."""
    max_connections: int = Field(default=4096, ge=1)
    """httpx connection pool size: bounds concurrent upstream calls per process (every
    upstream of the upstreams file together: they share the pool)."""
    # Here, among the upstream's bounds, since ``imagegate config`` lists the settings
    # in this order: it bounds the calls gRPC queues before the gateway takes them.
    max_pending_calls: int = Field(default=20000, ge=1)
    """Calls gRPC may queue while the server is busy accepting (bursts of new calls)."""
    http2: bool = False
    """Use HTTP/2 to the upstream (multiplexes many calls over few connections)."""
    upstream_unknown_model_answer_bytes: int = Field(default=128 * MIB, ge=1 * MIB)
    """The largest answer read from the upstream for a model the model table does not
    know (for known models, the largest answer the table allows for the request:
    ``n`` images of its size and format at 4 bytes per pixel, in base64, plus JSON).
    Larger answers are refused (UNAVAILABLE, ``UPSTREAM_ANSWER_TOO_LARGE``) and
    charged their estimate; this is also the memory one such call may take."""
    upstream_error_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * MIB)
    """How much of an upstream error answer's body is read (OpenAI's error JSON is a
    few hundred bytes); the rest is not read and its connection is closed."""
