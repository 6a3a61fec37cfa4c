"""Whether to trace, and where to: the standard ``OTEL_*`` variables that decide it.

Only the variables that turn traces on or choose the exporter are read here, to
refuse at start-up what this gateway cannot honour; everything else (headers,
timeouts, TLS files, the sampler, batch sizes, resource attributes) the
OpenTelemetry SDK reads itself, as documented for every SDK. Like the SDK, these
come from the process environment only (not from ``.env`` or the secrets
directory, which hold ``IMAGEGATE_*`` settings).

Traces are on when ``OTEL_TRACES_EXPORTER`` names an exporter, or, when it is
unset, when an OTLP endpoint is set. ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn them off whatever else is set.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from imagegate_server.errors import StartupError

Exporter = Literal["otlp", "console"]
EXPORTERS: tuple[Exporter, ...] = ("otlp", "console")
# OTLP's default protocol, and the only one this gateway exports with: the OTLP/gRPC
# exporter would bring a second gRPC client stack (and its grpcio pin) into a
# process that serves grpc.aio.
PROTOCOL = "http/protobuf"


class TraceSettings(BaseSettings):
    """The ``OTEL_*`` variables that decide whether and where spans are exported."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_file=None)

    otel_sdk_disabled: bool = False
    """``OTEL_SDK_DISABLED``: true turns traces off."""
    otel_traces_exporter: str | None = None
    """``OTEL_TRACES_EXPORTER``: comma-separated ``otlp``, ``console`` (spans as JSON
    on standard output) or ``none``. Unset: ``otlp`` when an endpoint is set."""
    otel_exporter_otlp_endpoint: str | None = None
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: the collector's base URL
    (``http://collector:4318``); spans go to ``/v1/traces`` under it."""
    otel_exporter_otlp_traces_endpoint: str | None = None
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: the full URL for spans; wins over the
    base URL."""
    otel_exporter_otlp_protocol: str | None = None
    """``OTEL_EXPORTER_OTLP_PROTOCOL``: must be ``http/protobuf`` when set."""
    otel_exporter_otlp_traces_protocol: str | None = None
    """``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: likewise, for spans only."""

    @classmethod
    def from_environment(cls) -> TraceSettings:
        try:
            return cls()
        except ValidationError as exc:
            names = ", ".join(str(e["loc"][0]).upper() for e in exc.errors())
            raise StartupError(f"traces: invalid value of {names}") from None

    def exporters(self) -> tuple[Exporter, ...]:
        """The span exporters to run; empty when traces are off.

        Raises :class:`StartupError` for an exporter, protocol or endpoint that this
        gateway cannot use: failing at start-up beats a gateway that silently
        exports nothing.
        """
        if self.otel_sdk_disabled:
            return ()
        if self.otel_traces_exporter is not None:
            names = [n.strip().lower() for n in self.otel_traces_exporter.split(",")]
            names = [n for n in names if n]
            if "none" in names or not names:
                return ()
            unknown = sorted(set(names) - set(EXPORTERS))
            if unknown:
                raise StartupError(
                    f"OTEL_TRACES_EXPORTER: {', '.join(u[:40] for u in unknown)} is not an "
                    f"exporter this gateway has (otlp, console or none)"
                )
            chosen = tuple(e for e in EXPORTERS if e in names)
        elif self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint:
            chosen = ("otlp",)
        else:
            return ()
        if "otlp" in chosen:
            self._check_otlp()
        return chosen

    def _check_otlp(self) -> None:
        for name, protocol in (
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", self.otel_exporter_otlp_traces_protocol),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", self.otel_exporter_otlp_protocol),
        ):
            if protocol is not None and protocol.strip() != PROTOCOL:
                raise StartupError(
                    f"{name}: this gateway exports spans over {PROTOCOL} only "
                    "(OTLP's default, port 4318 on a collector); unset it or set that"
                )
        for name, url in (
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", self.otel_exporter_otlp_traces_endpoint),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otel_exporter_otlp_endpoint),
        ):
            if url and _endpoint(url) is None:
                raise StartupError(f"{name}: expected an http:// or https:// URL with a host")

    def describe(self) -> str:
        """Where OTLP spans go, for the log (no credentials, query or fragment)."""
        traces_url = self.otel_exporter_otlp_traces_endpoint
        if traces_url:
            return _endpoint(traces_url) or "?"
        base = self.otel_exporter_otlp_endpoint
        if base:
            shown = _endpoint(base) or "?"
            return shown.rstrip("/") + "/v1/traces"
        return "http://localhost:4318/v1/traces"  # the SDK's default


def _endpoint(url: str) -> str | None:
    """``scheme://host[:port]/path`` of an http(s) URL, or None if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"
