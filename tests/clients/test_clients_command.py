"""`imagegate clients add | list | revoke` against real files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagegate_server import cli
from imagegate_server.clients import load_registry

IMAGEGATE = [sys.executable, "-m", "imagegate_server.cli"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["clients", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_prints_only_the_token_which_verifies_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    env = {**os.environ, "IMAGEGATE_CLIENTS_FILE": str(path)}
    result = subprocess.run(
        [*IMAGEGATE, "clients", "add", "team-a", "--images-per-minute", "30"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # nothing else on stdout
    assert token.startswith("igk_")
    assert "shown only this once" in result.stderr and token not in result.stderr
    content = path.read_text()
    assert token not in content
    assert token.split("_")[2] not in content  # not even the secret part
    registry = load_registry(path)
    client = registry.by_token(token)
    assert client is not None and client.id == "team-a"
    assert client.policy.images_per_minute == 30
    assert mode_of(path) == 0o600


def test_add_list_revoke_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clients.toml"
    code, first, _ = run(capsys, "add", "team-a", "--file", str(path), "--model", "gpt-image-2*")
    assert code == 0
    code, second, err = run(
        capsys,
        "add",
        "team-a",
        "--file",
        str(path),
        "--expires",
        "30d",
        "--identity",
        "spiffe://example.org/ns/a/sa/r",
    )
    assert code == 0 and "updated client team-a" in err
    first, second = first.strip(), second.strip()
    registry = load_registry(path)
    team = registry.clients["team-a"]
    assert registry.by_token(first) is team and registry.by_token(second) is team
    assert team.policy.models == ("gpt-image-2*",)  # kept from the first add
    assert team.identities == ("spiffe://example.org/ns/a/sa/r",)
    first_id, second_id = (t.token_id for t in team.tokens)
    assert team.tokens[1].expires is not None and team.tokens[0].expires is None

    code, listing, _ = run(capsys, "list", "--file", str(path))
    assert code == 0
    assert first_id in listing and second_id in listing
    assert "spiffe://example.org/ns/a/sa/r" in listing
    assert "models=gpt-image-2*" in listing and "operations=all" in listing
    for secret in (first, second):
        assert secret not in listing
    for line in path.read_text().splitlines():
        if line.startswith("sha256"):
            assert line.split('"')[1] not in listing  # no hashes either

    code, _, err = run(capsys, "revoke", "team-a", "--token-id", first_id, "--file", str(path))
    assert code == 0 and first_id in err
    registry = load_registry(path)
    assert registry.by_token(first) is None
    assert registry.by_token(second) is registry.clients["team-a"]

    code, _, _ = run(capsys, "revoke", "team-a", "--file", str(path))
    assert code == 0
    registry = load_registry(path)
    assert registry.by_token(second) is None and "team-a" not in registry.clients
    assert mode_of(path) == 0o600


def test_list_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text("defaults: {max_n: 2}\nclients: {b: {daily_budget_usd: 0.5}, a: {}}\n")
    code, out, _ = run(capsys, "list", "--file", str(path), "--json")
    assert code == 0
    listed = json.loads(out)
    assert [c["client"] for c in listed] == ["a", "b"]
    assert listed[1]["policy"]["max_n"] == 2
    assert listed[1]["policy"]["daily_budget_usd"] == "0.50"
    assert listed[0]["policy"]["requests_per_minute"] is None


def test_yaml_files_stay_yaml_and_keep_their_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text("# hand-written\ndefaults:\n  max_n: 2\nclients:\n  old: {max_n: 4}\n")
    path.chmod(0o640)
    code, out, _ = run(
        capsys,
        "add",
        "team-b",
        "--file",
        str(path),
        "--daily-budget-usd",
        "12.345678",
        "--no-stamp-identity",
        "--operation",
        "edit",
        "--operation",
        "generation",
    )
    assert code == 0
    token = out.strip()
    assert mode_of(path) == 0o640
    text = path.read_text()
    assert text.lstrip().startswith("defaults:")  # YAML, not TOML (comments are lost)
    registry = load_registry(path)
    team = registry.by_token(token)
    assert team is not None and team.id == "team-b"
    assert team.policy.daily_budget_micro_usd == 12_345_678
    assert team.policy.stamp_identity is False
    assert team.policy.max_n == 2  # still inherits
    assert registry.clients["old"].policy.max_n == 4


def test_add_without_token_for_certificate_only_clients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.toml"
    code, out, _ = run(
        capsys, "add", "batch", "--file", str(path), "--no-token", "--identity", "batch.svc"
    )
    assert code == 0 and out == ""
    registry = load_registry(path)
    assert registry.by_identity("batch.svc") is registry.clients["batch"]
    assert registry.clients["batch"].tokens == ()


def test_a_symlinked_file_is_edited_through_its_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "real" / "clients.toml"
    real.parent.mkdir()
    real.write_text("[clients]\n")
    link = tmp_path / "clients.toml"
    link.symlink_to(real)
    code, out, _ = run(capsys, "add", "a", "--file", str(link))
    assert code == 0
    assert link.is_symlink()
    assert load_registry(real).by_token(out.strip()) is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "team a"], "a client name is"),
        (["add", "a", "--max-n", "0"], "clients.a.max_n: must be an integer >= 1"),
        (["add", "a", "--identity", "not valid!"], "clients.a.identities: each identity"),
        (["revoke", "nobody"], "no client 'nobody'"),
        (["list"], "no such file"),
    ],
)
def test_errors_are_one_line_and_leave_the_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    path = tmp_path / "clients.toml"
    if argv[0] != "list":
        path.write_text("[clients.x]\nmax_n = 3\n")
    before = path.read_bytes() if path.exists() else None
    code, out, err = run(capsys, *argv, "--file", str(path))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and message in err, err
    assert (path.read_bytes() if path.exists() else None) == before


def test_revoke_an_unknown_token_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clients.toml"
    run(capsys, "add", "a", "--file", str(path))
    code, _, err = run(capsys, "revoke", "a", "--token-id", "zzzzzzzz", "--file", str(path))
    assert code == 1 and "has no token 'zzzzzzzz'" in err


def test_a_malformed_file_is_not_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.toml"
    path.write_text("[clients.a]\nmax_n = 0\n")
    code, out, err = run(capsys, "add", "b", "--file", str(path))
    assert code == 1 and out == ""
    assert "clients.a.max_n" in err
    assert path.read_text() == "[clients.a]\nmax_n = 0\n"


def test_no_file_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGEGATE_CLIENTS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    code, _, err = run(capsys, "list")
    assert code == 1 and "pass --file or set IMAGEGATE_CLIENTS_FILE" in err


def test_bad_option_values_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--max-n", "many"], ["--daily-budget-usd", "a lot"], ["--expires", "soon"]):
        with pytest.raises(SystemExit) as caught:
            cli.main(["clients", "add", "a", "--file", str(tmp_path / "c.toml"), *argv])
        assert caught.value.code == 2
    assert not (tmp_path / "c.toml").exists()


@pytest.mark.parametrize("expires", ["2020-01-01T00:00:00Z", "2020-01-01T01:00:00+01:00", "0d"])
def test_an_expiry_in_the_past_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expires: str
) -> None:
    # Such a token would be printed once and never work.
    path = tmp_path / "clients.toml"
    with pytest.raises(SystemExit) as caught:
        cli.main(["clients", "add", "a", "--file", str(path), "--expires", expires])
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""  # no token
    assert err.count("\n") == 1
    assert err.startswith("imagegate: error: argument --expires: ")
    assert "is not in the future" in err and err.endswith("(see imagegate clients add --help)\n")
    assert not path.exists()


def test_add_without_a_file_names_both_ways_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGEGATE_CLIENTS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    code, out, err = run(capsys, "add", "team-a")
    assert code == 1
    assert out == ""  # no token made for a file that is not there
    assert err == (
        "imagegate clients: no clients file: pass --file or set IMAGEGATE_CLIENTS_FILE\n"
    )
    assert list(tmp_path.iterdir()) == []
