"""Configuration, only through pydantic-settings: :class:`Settings`, every knob of the
gateway, and where its values come from.

Sources, highest first: ``IMAGEGATE_*`` environment variables, a ``.env`` file in
the working directory, files in the secrets directory (``IMAGEGATE_SECRETS_DIR``,
default ``/run/secrets``; a file named like the environment variable, in lower
case: ``imagegate_openai_api_key``, since pydantic-settings applies the prefix to
secret file names too).

A key source that is configured but yields no key (an empty value, an empty or
unreadable key file) stops the start-up: silently serving from the offline
emulator instead would look like a working gateway to OpenAI.

The fields are declared by concern, one section class per concern, in the modules
beside this one: :mod:`.serving` (address, connections, messages), :mod:`.upstream`
(which upstream, models, bounds of its calls), :mod:`.process` (drain, event loop,
workers, health and metrics ports), :mod:`.callers` (authentication, clients file,
TLS), :mod:`.limits` (limits, their state, Redis, prices), :mod:`.store`,
:mod:`.jobs` and :mod:`.emulator`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from imagegate_server.settings.callers import CallersSettings
from imagegate_server.settings.emulator import EmulatorSettings
from imagegate_server.settings.jobs import JobsSettings
from imagegate_server.settings.limits import LimitsSettings
from imagegate_server.settings.process import ProcessSettings, WorkersSettings
from imagegate_server.settings.serving import (
    CallerConnectionsSettings,
    ListeningSettings,
    MessagesSettings,
)
from imagegate_server.settings.store import StoreSettings
from imagegate_server.settings.upstream import (
    OPENAI_API_HOST,
    UpstreamCallsSettings,
    UpstreamChoiceSettings,
)

__all__ = ["OPENAI_API_HOST", "Settings", "invalid_fields", "secrets_directory"]


def invalid_fields(error: ValidationError) -> str:
    """The settings a validation error is about, for one line: names only, never
    values (one may be the key)."""
    return ", ".join(".".join(str(part) for part in e["loc"]) for e in error.errors())


def secrets_directory() -> Path:
    """The secrets directory (``IMAGEGATE_SECRETS_DIR``, default ``/run/secrets``)."""
    return Path(os.environ.get("IMAGEGATE_SECRETS_DIR", "/run/secrets"))


def _secrets_dir() -> str | None:
    # Only an existing directory: pydantic-settings warns about a missing one.
    path = secrets_directory()
    return str(path) if path.is_dir() else None


# The sections from last to first: pydantic takes the fields of the last base first,
# and that order is the order of ``imagegate config``'s lines and of the settings a
# validation error names.
class Settings(
    EmulatorSettings,
    JobsSettings,
    StoreSettings,
    WorkersSettings,
    LimitsSettings,
    CallersSettings,
    ProcessSettings,
    MessagesSettings,
    CallerConnectionsSettings,
    UpstreamCallsSettings,
    UpstreamChoiceSettings,
    ListeningSettings,
    BaseSettings,
):
    """Every knob of the gateway. Each field is ``IMAGEGATE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGEGATE_",
        env_file=".env",
        extra="ignore",
        secrets_dir=_secrets_dir(),
        hide_input_in_errors=True,
    )

    def store_directory(self) -> Path:
        """The local store's directory (``store_dir``, else ``<data_dir>/results``)."""
        return self.store_dir if self.store_dir is not None else self.data_dir / "results"
