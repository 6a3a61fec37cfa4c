"""The upstreams file: what it may say, how a mistake is reported (the field, never a
value), where keys come from (never the file itself), and how a change is picked up."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from routing_support import settings

from imagegate_server.errors import StartupError
from imagegate_server.routing import UpstreamsFile, UpstreamsFileError, load_upstreams

KEY = "sk-filetest-SECRETKEY-0123456789"
LOGGER = "imagegate_server.routing.upstreams_file"


def _load(tmp_path: Path, text: str, name: str = "upstreams.toml") -> UpstreamsFileError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UpstreamsFileError) as caught:
        load_upstreams(path, settings(path))
    return caught.value


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.key"
    path.write_text(KEY + "\n")
    return path


def test_every_kind_and_key_reference_loads(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "azure_key").write_text("azure-0123\n")
    monkeypatch.setenv("IMAGEGATE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("OTHER_KEY", "other-key-9")
    path = tmp_path / "upstreams.yaml"
    path.write_text(
        f"""
upstreams:
  team-a:
    key_file: {key_file}
    organization: org-abc
    project: proj_team_a
    models: ["gpt-image-2*"]
    weight: 3
    images_per_minute: 250
  azure-eu:
    kind: azure
    base_url: https://example-eu.openai.azure.com/
    key_secret: azure_key
    auth: bearer
    route: v1
    deployments: {{gpt-image-2: img2-eu}}
    priority: 1
  local:
    kind: compatible
    base_url: http://127.0.0.1:8089/v1
    key_env: OTHER_KEY
"""
    )
    loaded = load_upstreams(path, settings(path))
    a, azure, local = loaded.upstreams
    assert a.config.api_key.get_secret_value() == KEY
    assert a.config.base_url == "https://api.openai.com/v1"
    assert (a.config.organization, a.config.project) == ("org-abc", "proj_team_a")
    assert a.serves("gpt-image-2.5-flare") and not a.serves("dall-e-2")
    assert (a.weight, a.images_per_minute, a.requests_per_minute) == (3, 250, None)
    assert azure.config.api_key.get_secret_value() == "azure-0123"
    assert azure.config.azure is not None
    assert azure.config.azure.route == "v1" and azure.config.azure.auth == "bearer"
    assert azure.config.azure.api_version == "preview"  # v1's images are a preview
    assert azure.config.base_url == "https://example-eu.openai.azure.com"
    assert azure.serves("gpt-image-2") and not azure.serves("gpt-image-2.5-flare")
    assert azure.priority == 1
    assert local.config.api_key.get_secret_value() == "other-key-9"
    assert local.serves("anything")
    # The key and secret files are watched with the file.
    assert set(loaded.files) == {key_file, secrets / "azure_key"}


@pytest.mark.parametrize(
    ("body", "where", "problem"),
    [
        (
            "kind = 'openai'\n",
            "upstreams.a",
            "needs exactly one of key_file, key_secret and key_env",
        ),
        (
            "key_env = 'X'\nkey_secret = 'y'\n",
            "upstreams.a",
            "needs exactly one of key_file, key_secret and key_env",
        ),
        ("key_env = 'X'\nweight = 0\n", "upstreams.a.weight", "must be an integer from 1 to 10000"),
        ("key_env = 'X'\nceiling = 3\n", "upstreams.a.ceiling", "unknown field"),
        (
            "key_env = 'X'\nkind = 'azure'\nbase_url = 'https://x.openai.azure.com'\n"
            "deployments = {gpt-image-2 = 'd'}\n",
            "upstreams.a",
            "api_version is required for the deployments route",
        ),
        (
            "key_env = 'X'\nkind = 'azure'\nbase_url = 'https://x.openai.azure.com'\n",
            "upstreams.a",
            'kind "azure" needs deployments: model = deployment name',
        ),
        (
            "key_env = 'X'\nkind = 'compatible'\n",
            "upstreams.a",
            'kind "compatible" needs its base_url',
        ),
        (
            "key_env = 'X'\napi_version = 'v'\n",
            "upstreams.a",
            'api_version is for kind = "azure" only',
        ),
        (
            "key_env = 'X'\nbase_url = 'ftp://x'\n",
            "upstreams.a.base_url",
            "must be an http:// or https:// URL with a host",
        ),
    ],
)
def test_a_mistake_names_the_field(tmp_path: Path, body: str, where: str, problem: str) -> None:
    error = _load(tmp_path, "[upstreams.a]\n" + body)
    assert (error.where, error.problem) == (where, problem)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (f"api_key = '{KEY}'\n", "upstreams.a.api_key"),
        (f"key_env = 'X'\norganization = '{KEY}'\n", "upstreams.a.organization"),
        ("key_env = 'X'\nproject = '0123456789abcdef0123456789abcdef'\n", "upstreams.a.project"),
        ("key = 'short'\n", "upstreams.a.key"),
        (f"key_env = 'X'\nbase_url = 'https://u:{KEY}@example.com/v1'\n", "upstreams.a.base_url"),
    ],
)
def test_a_key_written_in_the_file_refuses_the_file_without_echoing_it(
    tmp_path: Path, body: str, where: str
) -> None:
    error = _load(tmp_path, "[upstreams.a]\n" + body)
    assert error.where == where
    assert "key_file, key_secret or key_env" in error.problem
    text = str(error)
    assert KEY not in text and "0123456789abcdef0123456789abcdef" not in text


def test_a_key_reference_that_gives_no_key_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    cases = {
        f"key_file = '{tmp_path / 'missing.key'}'": ("key_file", "names no file"),
        f"key_file = '{empty}'": ("key_file", "names an empty file"),
        "key_env = 'NO_SUCH_KEY_VARIABLE'": (
            "key_env",
            "names an environment variable that is unset or empty",
        ),
    }
    for body, (field, problem) in cases.items():
        error = _load(tmp_path, f"[upstreams.a]\n{body}\n")
        assert (error.where, error.problem) == (f"upstreams.a.{field}", problem)


def test_a_bad_file_stops_the_start_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "upstreams.toml"
    path.write_text(f"[upstreams.a]\napi_key = '{KEY}'\n")
    with pytest.raises(StartupError) as caught:
        UpstreamsFile(path, settings(path))
    message = str(caught.value)
    assert message.startswith("IMAGEGATE_UPSTREAMS_FILE ") and "upstreams.a.api_key" in message
    assert KEY not in message and "\n" not in message
    path.write_text("[upstreams]\n")
    with pytest.raises(StartupError, match="lists no upstream"):
        UpstreamsFile(path, settings(path))


async def test_a_change_is_picked_up_and_a_bad_one_keeps_the_last_good_version(
    tmp_path: Path, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "upstreams.toml"
    path.write_text(f"[upstreams.a]\nkey_file = '{key_file}'\n")
    live = UpstreamsFile(path, settings(path))
    seen = []
    live.on_change = seen.append
    caplog.set_level(logging.INFO, logger=LOGGER)

    def replace(text: str) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    replace(f"[upstreams.a]\nkey_file = '{key_file}'\nweight = 0\n")
    assert not await live.check()
    assert not await live.check()  # reported once per bad version
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "upstreams.a.weight" in errors[0].getMessage()
    assert live.current().upstreams[0].weight == 1
    replace(f"[upstreams.a]\nkey_file = '{key_file}'\nweight = 4\n")
    assert await live.check()
    assert live.current().upstreams[0].weight == 4 and len(seen) == 1
    # A rotated key (its file renamed over the old one) is a new version too.
    await asyncio.sleep(0.01)  # a new mtime, even on coarse file systems
    rotated = tmp_path / "a.key.new"
    rotated.write_text("sk-rotated-0123\n")
    os.replace(rotated, key_file)
    assert await live.check()
    assert live.current().upstreams[0].config.api_key.get_secret_value() == "sk-rotated-0123"
    for record in caplog.records:
        assert KEY not in record.getMessage() and "sk-rotated" not in record.getMessage()


def test_the_documented_example_is_a_valid_file() -> None:
    import tomllib

    from imagegate_server.routing.schema import UpstreamsDocument, inline_secret

    example = Path(__file__).resolve().parents[2] / "docs" / "upstreams.example.toml"
    data = tomllib.loads(example.read_text())
    assert inline_secret(data) is None
    document = UpstreamsDocument.model_validate(data)
    assert list(document.upstreams) == ["team-a", "team-b", "azure-eu", "local-lab"]
    assert document.upstreams["azure-eu"].deployments == {"gpt-image-2": "gpt-image-2-eu"}


def test_a_file_with_too_many_upstreams_is_refused(tmp_path: Path) -> None:
    body = "".join(f"[upstreams.u{i}]\nkey_env = 'X'\n" for i in range(65))
    error = _load(tmp_path, body)
    assert (error.where, error.problem) == ("", "lists more than 64 upstreams")
