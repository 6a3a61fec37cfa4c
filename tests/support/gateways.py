"""Settings of a gateway that a test starts in its own process."""

from __future__ import annotations

from typing import Any

from imagegate_server.settings import Settings


def gateway_settings(api_key: str, base_url: str, **overrides: Any) -> Settings:
    """A gateway on 127.0.0.1:0 in front of ``base_url`` with ``api_key``: no .env file
    read, no shutdown grace; ``overrides`` are further Settings fields."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "openai_api_key": api_key,
        "openai_base_url": base_url,
        "shutdown_grace_s": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
