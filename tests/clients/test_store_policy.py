"""The result store's policy fields: ``store_results``, ``result_retention`` and
``max_stored_bytes``, in the file (TOML and YAML) and in ``clients add``."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate_server import cli
from imagegate_server.clients import ClientRegistry, ClientsFileError, load_registry
from imagegate_server.clients.policy import DEFAULT_MAX_STORED_BYTES, UNLIMITED

GIB = 1024**3


def registry_of(tmp_path: Path, text: str, name: str = "clients.toml") -> ClientRegistry:
    path = tmp_path / name
    path.write_text(text)
    return load_registry(path)


def test_absent_everywhere_a_client_may_store_a_gib_for_the_operators_retention(
    tmp_path: Path,
) -> None:
    registry = registry_of(tmp_path, "[clients.a]\nmax_concurrent = 2\n")
    for policy in (registry.clients["a"].policy, registry.defaults, UNLIMITED):
        assert policy.store_results is True
        assert policy.result_retention_s is None
        assert policy.max_stored_bytes == DEFAULT_MAX_STORED_BYTES == GIB


def test_each_field_from_defaults_or_own_in_units(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        '[defaults]\nstore_results = false\nresult_retention = "7d"\nmax_stored_bytes = "5 GiB"\n'
        "[clients.inherits]\nmax_n = 1\n"
        '[clients.own]\nstore_results = true\nresult_retention = "90m"\n'
        'max_stored_bytes = "unlimited"\n'
        "[clients.seconds]\nresult_retention = 3600\nmax_stored_bytes = 1000\n"
        '[clients.operator-default]\nresult_retention = "default"\n',
    )
    policies = {name: client.policy for name, client in registry.clients.items()}
    inherits = policies["inherits"]
    assert (inherits.store_results, inherits.result_retention_s, inherits.max_stored_bytes) == (
        False,
        7 * 86400,
        5 * GIB,
    )
    own = policies["own"]
    assert (own.store_results, own.result_retention_s, own.max_stored_bytes) == (
        True,
        5400,
        None,
    )
    assert policies["seconds"].result_retention_s == 3600
    assert policies["seconds"].max_stored_bytes == 1000
    assert policies["operator-default"].result_retention_s is None  # beats [defaults]' 7d


def test_yaml_says_the_same(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        "clients:\n  a: {store_results: false, result_retention: 24h, max_stored_bytes: 2 GiB}\n",
        "clients.yaml",
    )
    policy = registry.clients["a"].policy
    assert (policy.store_results, policy.result_retention_s, policy.max_stored_bytes) == (
        False,
        86400,
        2 * GIB,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("store_results", '"yes"'),
        ("result_retention", "59"),  # below the store's shortest
        ("result_retention", '"366d"'),
        ("result_retention", '"a week"'),
        ("result_retention", "true"),
        ("max_stored_bytes", "-1"),
        ("max_stored_bytes", '"lots"'),
    ],
)
def test_a_bad_value_names_its_field(tmp_path: Path, field: str, value: str) -> None:
    with pytest.raises(ClientsFileError) as caught:
        registry_of(tmp_path, f"[clients.a]\n{field} = {value}\n")
    assert caught.value.where == f"clients.a.{field}"


def test_clients_add_sets_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clients.toml"
    argv = ["clients", "add", "a", "--file", str(path), "--no-store-results"]
    argv += ["--result-retention", "2d", "--max-stored-bytes", "3 GiB"]
    assert cli.main(argv) == 0
    policy = load_registry(path).clients["a"].policy
    assert (policy.store_results, policy.result_retention_s, policy.max_stored_bytes) == (
        False,
        2 * 86400,
        3 * GIB,
    )
    capsys.readouterr()
    assert cli.main(["clients", "list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "store_results=false" in listed
    assert f"result_retention={2 * 86400}" in listed
    assert f"max_stored_bytes={3 * GIB}" in listed


def test_clients_add_refuses_a_retention_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    with pytest.raises(SystemExit):
        cli.main(["clients", "add", "a", "--file", str(path), "--result-retention", "30s"])
    assert not path.exists()
