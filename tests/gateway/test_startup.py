"""Where the OpenAI key comes from, and start-ups that must fail loudly in one line."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import grpc
import pytest
from gateway_support import OPENAI_KEY
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.environment import clear_settings
from support.serve import serve

from imagegate_server.emulator import Emulator
from imagegate_server.errors import StartupError
from imagegate_server.settings import Settings

REQUEST = pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt="a cat"))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    clear_settings(monkeypatch)  # all but the session's data directory and link port
    # The result store's link port: a free one, as every test's gateway takes.
    monkeypatch.setenv("IMAGEGATE_STORE_HTTP_PORT", "0")
    return {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")} | {
        "IMAGEGATE_STORE_HTTP_PORT": "0"
    }


def _settings(**kwargs: object) -> Settings:
    values: dict[str, object] = {"_env_file": None, "_secrets_dir": None}
    values.update(kwargs)
    return Settings(**values)  # type: ignore[arg-type]


def test_key_from_the_environment(clean_env: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_OPENAI_API_KEY", OPENAI_KEY)
    key = _settings().api_key()
    assert key is not None and key.get_secret_value() == OPENAI_KEY


def test_key_from_a_key_file(clean_env: object, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(f"{OPENAI_KEY}\n")
    key = _settings(openai_api_key_file=tmp_path / "key").api_key()
    assert key is not None and key.get_secret_value() == OPENAI_KEY


def test_key_from_the_secrets_dir_under_its_documented_name(
    clean_env: object, tmp_path: Path
) -> None:
    (tmp_path / "imagegate_openai_api_key").write_text(OPENAI_KEY)
    key = _settings(_secrets_dir=tmp_path).api_key()
    assert key is not None and key.get_secret_value() == OPENAI_KEY


def test_key_from_a_dotenv_file(clean_env: object, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"IMAGEGATE_OPENAI_API_KEY={OPENAI_KEY}\n")
    key = _settings(_env_file=tmp_path / ".env").api_key()
    assert key is not None and key.get_secret_value() == OPENAI_KEY


@pytest.mark.parametrize("text", ["seed, tone", '["seed", "tone"]'])
def test_the_extra_parameters_allowlist_from_the_environment(
    clean_env: object, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    # Both documented forms; the comma list failed with a traceback in pydantic-settings.
    monkeypatch.setenv("IMAGEGATE_EXTRA_PARAMETERS", text)
    assert _settings().extra_parameters == {"seed", "tone"}


def test_no_key_anywhere_means_the_emulator(clean_env: object) -> None:
    assert _settings().api_key() is None


@pytest.mark.parametrize("source", ["env", "file", "secrets", "dotenv", "missing-file"])
def test_a_configured_but_empty_key_source_refuses_to_start(
    clean_env: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    kwargs: dict[str, object] = {}
    if source == "env":
        monkeypatch.setenv("IMAGEGATE_OPENAI_API_KEY", "  ")
    elif source == "file":
        (tmp_path / "key").write_text("\n")
        kwargs["openai_api_key_file"] = tmp_path / "key"
    elif source == "secrets":
        (tmp_path / "imagegate_openai_api_key").write_text("")
        kwargs["_secrets_dir"] = tmp_path
    elif source == "dotenv":
        (tmp_path / ".env").write_text("IMAGEGATE_OPENAI_API_KEY=\n")
        kwargs["_env_file"] = tmp_path / ".env"
    else:
        kwargs["openai_api_key_file"] = tmp_path / "absent"
    with pytest.raises(StartupError) as caught:
        _settings(**kwargs).api_key()
    assert "\n" not in str(caught.value)


async def _serve(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, list[str]]:
    """Runs ``imagegate serve ARGS`` until it exits (within 30 s): its code and stderr."""
    with serve(args, env, cwd) as server:
        code = await server.exited(30)
    return code, server.lines


def _one_clear_line(lines: list[str], phrase: str) -> None:
    problems = [line for line in lines if line.startswith("imagegate serve:")]
    assert len(problems) == 1 and phrase in problems[0], lines
    assert not any("Traceback" in line for line in lines), lines


async def test_an_empty_key_refuses_to_start_in_one_line(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(clean_env, IMAGEGATE_OPENAI_API_KEY="")
    code, lines = await _serve(env, tmp_path, "--port", "0")
    assert code != 0
    _one_clear_line(lines, "IMAGEGATE_OPENAI_API_KEY")


async def test_a_missing_key_file_refuses_to_start_in_one_line(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(clean_env, IMAGEGATE_OPENAI_API_KEY_FILE=str(tmp_path / "absent"))
    code, lines = await _serve(env, tmp_path, "--port", "0")
    assert code != 0
    _one_clear_line(lines, "IMAGEGATE_OPENAI_API_KEY_FILE")


async def test_a_port_in_use_refuses_to_start_in_one_line(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = await _serve(clean_env, tmp_path, "--port", str(port))
    assert code != 0
    _one_clear_line(lines, f"127.0.0.1:{port}")


async def test_serve_reads_the_key_from_the_secrets_dir(
    clean_env: dict[str, str], tmp_path: Path, emulator: Emulator
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "imagegate_openai_api_key").write_text(OPENAI_KEY)
    env = dict(
        clean_env,
        IMAGEGATE_SECRETS_DIR=str(secrets),
        IMAGEGATE_OPENAI_BASE_URL=emulator.base_url,
    )
    with serve(["--port", "0"], env, tmp_path) as server:
        port = await server.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(REQUEST)
        # The call reached our emulator with the key: not the embedded one.
        assert len(emulator.journal.by_path("/v1/images/generations")) == 1


async def test_the_demo_stays_offline_whatever_key_is_configured(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    (tmp_path / ".env").write_text(
        f"IMAGEGATE_OPENAI_API_KEY={OPENAI_KEY}\nIMAGEGATE_OPENAI_BASE_URL={nowhere}\n"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "imagegate_openai_api_key").write_text(OPENAI_KEY)
    env = dict(clean_env, IMAGEGATE_SECRETS_DIR=str(secrets), IMAGEGATE_OPENAI_BASE_URL=nowhere)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imagegate_server.cli", "demo", "--out", str(tmp_path / "out"),
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "embedded emulator" in out.decode()
    assert list((tmp_path / "out").glob("*.png"))
