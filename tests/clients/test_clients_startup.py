"""Secure by default: which start-ups `serve` must refuse without caller authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagegate_server.clients import is_loopback, startup_auth_problem
from imagegate_server.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", " 127.0.0.1 "]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "[::]", "", "10.0.0.5", "192.168.1.2", "gateway.internal", "128.0.0.1"],
)
def test_reachable_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_a_real_key_on_a_public_bind_without_authentication_is_refused() -> None:
    problem = startup_auth_problem(settings(host="0.0.0.0"), real_key=True)
    assert problem is not None
    assert "\n" not in problem
    for hint in ("IMAGEGATE_CLIENTS_FILE", "IMAGEGATE_TLS_CLIENT_CA_FILE", "IMAGEGATE_AUTH=none"):
        assert hint in problem


@pytest.mark.parametrize(
    ("values", "real_key"),
    [
        ({"host": "0.0.0.0"}, False),  # the emulator: nothing to spend
        ({"host": "127.0.0.1"}, True),  # only this machine can call
        ({"host": "localhost"}, True),
        ({"host": "0.0.0.0", "auth": "none"}, True),  # explicitly anonymous
        ({"host": "0.0.0.0", "clients_file": Path("/etc/imagegate/clients.toml")}, True),
        ({"host": "0.0.0.0", "tls_client_ca_file": Path("/etc/imagegate/ca.pem")}, True),
    ],
)
def test_allowed_start_ups(values: dict[str, Any], real_key: bool) -> None:
    assert startup_auth_problem(settings(**values), real_key=real_key) is None


def test_auth_setting_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_AUTH", "none")
    monkeypatch.setenv("IMAGEGATE_CLIENTS_RELOAD_S", "0.5")
    loaded = settings()
    assert loaded.auth == "none" and loaded.clients_reload_s == 0.5
    monkeypatch.setenv("IMAGEGATE_AUTH", "off")
    with pytest.raises(ValueError):
        settings()
