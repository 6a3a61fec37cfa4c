"""``imagegate config``: every setting, its value and its source; never a secret.

Run as a user runs it: a fresh process, with settings in the environment, a ``.env``
file in its working directory and a secrets directory.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support.serve import MODULE_COMMAND, clean_env

from imagegate_server.settings import Settings

CANARIES = {
    "env_key": "sk-canary-ENV-7c1d0e",
    "secret_key": "sk-canary-SECRETSDIR-9a44f2",
    "redis_password": "canary-REDISPW-31b8",
    "url_password": "canary-URLPW-5e02",
}
ROW = re.compile(r"(?P<variable>IMAGEGATE_\w+) +(?P<value>.+?) {2,}(?P<source>\S.*)")


def config(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODULE_COMMAND, "config"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        match = ROW.fullmatch(line)
        if match:
            assert match["variable"] not in found, line
            found[match["variable"]] = (match["value"], match["source"])
    return found


@pytest.fixture
def sources(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Settings from all three sources, secrets among them, and one shadowed secret."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # Shadowed by the environment's key, so only "set" and the winning source show.
    (secrets / "imagegate_openai_api_key").write_text(CANARIES["secret_key"])
    (secrets / "imagegate_port").write_text("6001")
    (tmp_path / ".env").write_text(
        f"IMAGEGATE_REDIS_URL=redis://:{CANARIES['redis_password']}@127.0.0.1:6379/0\n"
        "IMAGEGATE_MAX_RETRIES=5\n"
    )
    env = clean_env(
        IMAGEGATE_SECRETS_DIR=str(secrets),
        IMAGEGATE_OPENAI_API_KEY=CANARIES["env_key"],
        IMAGEGATE_OPENAI_BASE_URL=f"https://ops:{CANARIES['url_password']}@127.0.0.1:9/v1",
        IMAGEGATE_EXTRA_PARAMETERS="seed,tone",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    return env, tmp_path


def test_every_setting_with_its_value_and_source(sources: tuple[dict[str, str], Path]) -> None:
    env, cwd = sources
    done = config(env, cwd)
    assert done.returncode == 0, done.stderr
    found = rows(done.stdout)
    expected = {
        "IMAGEGATE_OPENAI_API_KEY": ("set", "environment"),
        "IMAGEGATE_REDIS_URL": ("set", ".env"),
        "IMAGEGATE_MAX_RETRIES": ("5", ".env"),
        "IMAGEGATE_PORT": ("6001", "secrets dir"),
        "IMAGEGATE_HOST": ("127.0.0.1", "default"),
        "IMAGEGATE_OPENAI_API_KEY_FILE": ("unset", "default"),
        "IMAGEGATE_OPENAI_BASE_URL": ("https://***@127.0.0.1:9/v1", "environment"),
        "IMAGEGATE_EXTRA_PARAMETERS": ("seed,tone", "environment"),
        "IMAGEGATE_METRICS_MULTIPROC_DIR": (
            str(cwd / "metrics"),
            "environment (PROMETHEUS_MULTIPROC_DIR)",
        ),
    }
    assert {name: found.get(name) for name in expected} == expected
    # Every field, once (a setting added to Settings shows up without a change here).
    assert len(found) == len(Settings.model_fields)
    assert (
        done.stdout.splitlines()[-1]
        == "# upstream: https://***@127.0.0.1:9/v1 with the key set above"
    )


def test_no_secret_value_is_ever_printed(sources: tuple[dict[str, str], Path]) -> None:
    env, cwd = sources
    done = config(env, cwd)
    assert done.returncode == 0, done.stderr
    for canary in CANARIES.values():
        assert canary not in done.stdout + done.stderr
    # An invalid setting is named, and the secrets still never appear.
    done = config({**env, "IMAGEGATE_PORT": "not-a-port"}, cwd)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "imagegate config: invalid settings: port\n"


def test_without_settings_everything_is_a_default(tmp_path: Path) -> None:
    done = config(clean_env(IMAGEGATE_SECRETS_DIR=str(tmp_path / "none")), tmp_path)
    assert done.returncode == 0, done.stderr
    found = rows(done.stdout)
    assert {source for _, source in found.values()} == {"default"}
    assert found["IMAGEGATE_OPENAI_API_KEY"] == ("unset", "default")
    assert found["IMAGEGATE_REDIS_URL"] == ("unset", "default")
    assert done.stdout.splitlines()[-1] == (
        "# upstream: the embedded emulator (no OpenAI key is set)"
    )
