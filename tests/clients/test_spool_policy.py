"""``max_spooled_bytes``: the one policy field with a default, in the file and the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate_server import cli
from imagegate_server.clients import ClientRegistry, ClientsFileError, load_registry
from imagegate_server.clients.policy import DEFAULT_MAX_SPOOLED_BYTES, UNLIMITED

GIB = 1024**3


def registry_of(tmp_path: Path, text: str) -> ClientRegistry:
    path = tmp_path / "clients.toml"
    path.write_text(text)
    return load_registry(path)


def test_absent_everywhere_it_is_the_default_even_for_callers_the_file_does_not_name(
    tmp_path: Path,
) -> None:
    registry = registry_of(tmp_path, "[clients.a]\nmax_concurrent = 2\n")
    assert DEFAULT_MAX_SPOOLED_BYTES == GIB
    assert registry.clients["a"].policy.max_spooled_bytes == GIB
    assert registry.defaults.max_spooled_bytes == GIB
    assert UNLIMITED.max_spooled_bytes == GIB  # no clients file: anonymous callers too


def test_sizes_with_units_defaults_overrides_and_unlimited(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        '[defaults]\nmax_spooled_bytes = "512 MiB"\n'
        "[clients.inherits]\nmax_n = 1\n"
        "[clients.none]\nmax_spooled_bytes = 0\n"
        '[clients.any]\nmax_spooled_bytes = "unlimited"\n'
        '[clients.decimal]\nmax_spooled_bytes = "2GB"\n'
        "[clients.exact]\nmax_spooled_bytes = 1234567\n",
    )
    policies = {name: client.policy.max_spooled_bytes for name, client in registry.clients.items()}
    assert policies == {
        "inherits": 512 * 1024**2,
        "none": 0,
        "any": None,
        "decimal": 2_000_000_000,
        "exact": 1234567,
    }


@pytest.mark.parametrize("value", ["-1", '"lots"', "1.5", "true", '"5 parsecs"', '"-3 MiB"'])
def test_a_bad_size_names_the_field(tmp_path: Path, value: str) -> None:
    with pytest.raises(ClientsFileError) as caught:
        registry_of(tmp_path, f"[clients.a]\nmax_spooled_bytes = {value}\n")
    assert caught.value.where == "clients.a.max_spooled_bytes"
    assert "size in bytes" in caught.value.problem


def test_clients_add_writes_it_and_list_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.toml"
    argv = ["clients", "add", "a", "--file", str(path), "--max-spooled-bytes", "2 GiB"]
    assert cli.main(argv) == 0
    assert load_registry(path).clients["a"].policy.max_spooled_bytes == 2 * GIB
    capsys.readouterr()
    assert cli.main(["clients", "list", "--file", str(path)]) == 0
    assert f"max_spooled_bytes={2 * GIB}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main([*argv[:-1], "plenty"])
    assert "expected bytes" in capsys.readouterr().err
