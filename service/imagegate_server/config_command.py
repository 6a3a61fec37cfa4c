"""``imagegate config``: the settings ``imagegate serve`` would run with, and where each
came from.

One line per :class:`~imagegate_server.settings.Settings` field: its variable, its value
and its source (the environment, ``.env``, the secrets directory, or the default), in
the order pydantic-settings applies them. Secrets (every ``SecretStr`` field) show only
``set`` or ``unset``, and a URL's user and password are hidden, since this output is
pasted into tickets and CI logs. ``serve``'s own flags (``--host``, ``--port``,
``--workers``) are not seen here: they outrank everything shown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

# pydantic and the settings are imported in the handler: cli.py imports this for --help.

_MAX_VALUE_CHARS = 200


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show the settings in effect and where each came from (secrets: set/unset)",
        description="Show every IMAGEGATE_* setting as 'imagegate serve' would read it "
        "here: its value and its source (environment, .env, secrets directory, default). "
        "Secrets show only whether they are set.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import SecretStr, ValidationError
    from pydantic_settings import (
        DotEnvSettingsSource,
        EnvSettingsSource,
        SecretsSettingsSource,
        SettingsError,
    )

    from imagegate_server.settings import Settings, invalid_fields

    try:
        settings = Settings()
        found = [
            ("environment", EnvSettingsSource(Settings)()),
            (".env", DotEnvSettingsSource(Settings)()),
            ("secrets dir", SecretsSettingsSource(Settings)()),
        ]
    except ValidationError as exc:
        print(f"imagegate config: invalid settings: {invalid_fields(exc)}", file=sys.stderr)
        return 1
    except SettingsError as exc:  # names the field and the source, never the value
        print(f"imagegate config: {exc}", file=sys.stderr)
        return 1
    secrets_dir = Settings.model_config.get("secrets_dir")
    print(
        "# highest first: environment, .env "
        f"({'present' if Path('.env').is_file() else 'absent'} here), secrets dir "
        f"({secrets_dir or 'absent'}), default; 'imagegate serve' flags outrank them all"
    )
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = _secret(value) if _is_secret(field, SecretStr) else _value(value)
        rows.append((_variable(name, field), shown, _source(name, field, found)))
    width = max(len(variable) for variable, _, _ in rows)
    value_width = min(40, max(len(shown) for _, shown, _ in rows))
    for variable, shown, source in rows:
        print(f"{variable:<{width}}  {shown:<{value_width}}  {source}".rstrip())
    keyed = settings.openai_api_key is not None or settings.openai_api_key_file is not None
    upstream = (
        f"{_value(settings.openai_base_url)} with the key set above"
        if keyed
        else "the embedded emulator (no OpenAI key is set)"
    )
    print(f"# upstream: {upstream}")
    return 0


def _is_secret(field: FieldInfo, secret_type: type) -> bool:
    annotation = field.annotation
    return annotation is secret_type or secret_type in getattr(annotation, "__args__", ())


def _secret(value: object) -> str:
    return "unset" if value is None else "set"


def _value(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, frozenset | set | tuple | list):
        text = ",".join(sorted(str(item) for item in value)) or "(empty)"
    elif isinstance(value, str):
        text = _without_userinfo(value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _without_userinfo(text: str) -> str:
    # A URL setting may carry credentials (https://user:password@host): not for a log.
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return "(unreadable URL)"
    if not parts.username and not parts.password:
        return text
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()


def _aliases(name: str, field: FieldInfo) -> list[str]:
    """The keys a source may report ``name`` under: the field name, or its aliases."""
    from pydantic import AliasChoices

    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    return [name]


def _variable(name: str, field: FieldInfo) -> str:
    names = _aliases(name, field)
    if names == [name]:
        return f"IMAGEGATE_{name.upper()}"
    # Of several variables, the gateway's own name.
    return next((alias for alias in names if alias.startswith("IMAGEGATE_")), names[0])


def _source(name: str, field: FieldInfo, found: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    keys = {key.lower() for key in _aliases(name, field)}
    for label, values in found:
        hits = [key for key in values if key.lower() in keys]
        if hits:
            variable = _variable(name, field)
            # Say which variable, when it is not the one shown (PROMETHEUS_MULTIPROC_DIR).
            other = hits[0] if hits[0].lower() != variable.lower() and hits[0] != name else None
            return f"{label} ({other})" if other else label
    return "default"
