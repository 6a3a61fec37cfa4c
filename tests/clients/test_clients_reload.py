"""The live clients file: start-up errors, reloads, bad versions, Kubernetes' symlink swap."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from imagegate_server.clients import ClientsFile, tokens
from imagegate_server.errors import StartupError
from imagegate_server.settings import Settings

LOGGER = "imagegate_server.clients.reload"


def clients_toml(*names: str, max_n: int = 1) -> str:
    return "".join(f"[clients.{name}]\nmax_n = {max_n}\n" for name in names)


def replace(path: Path, text: str) -> None:
    """Write like an editor or the CLI: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def wait_for(condition: object, timeout_s: float = 5.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_malformed_file_at_start_is_one_startup_line(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    new = tokens.generate()
    path.write_text(
        f'[clients.a]\nmax_n = 0\ntokens = [{{id = "{new.token_id}", sha256 = "{new.sha256}", '
        "created = 2026-12-01T00:00:00Z}]\n"
    )
    with pytest.raises(StartupError) as caught:
        ClientsFile(path)
    message = str(caught.value)
    assert message == (
        f"IMAGEGATE_CLIENTS_FILE {str(path)!r}: clients.a.max_n: "
        'must be an integer >= 1 (or "unlimited")'
    )
    assert new.sha256 not in message
    with pytest.raises(StartupError, match="no such file"):
        ClientsFile(tmp_path / "missing.toml")


def test_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text("clients: {a: {}}\n")
    settings = Settings(_env_file=None, clients_file=path, clients_reload_s=0.5)  # type: ignore[call-arg]
    live = ClientsFile.from_settings(settings)
    assert live is not None and live.reload_s == 0.5 and list(live.current().clients) == ["a"]
    assert ClientsFile.from_settings(Settings(_env_file=None)) is None  # type: ignore[call-arg]


async def test_the_poller_swaps_in_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(clients_toml("a"))
    live = ClientsFile(path, reload_s=0.02)
    first = live.current()
    assert list(first.clients) == ["a"]
    async with live:
        replace(path, clients_toml("a", "b"))
        await wait_for(lambda: live.current() is not first)
        assert sorted(live.current().clients) == ["a", "b"]
        # An in-place rewrite (same inode) is seen too.
        second = live.current()
        with path.open("w") as handle:
            handle.write(clients_toml("a", "b", "c"))
        await wait_for(lambda: len(live.current()) == 3)
        assert live.current() is not second
    assert first.clients["a"].policy.max_n == 1  # old registries stay intact


async def test_current_is_the_same_object_until_a_change(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(clients_toml("a"))
    live = ClientsFile(path)
    registry = live.current()
    assert await live.check() is False
    assert live.current() is registry


async def test_a_bad_version_keeps_the_last_good_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "clients.toml"
    path.write_text(clients_toml("a"))
    live = ClientsFile(path)
    good = live.current()

    replace(path, clients_toml("a", "b") + "max_concurrent = 0\n")
    for _ in range(5):  # many polls of the same bad version
        assert await live.check() is False
    assert live.current() is good
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert "clients.b.max_concurrent: must be an integer >= 1" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()

    replace(path, clients_toml("a", "b") + "max_concurrent = -1\n")  # another bad version
    assert await live.check() is False
    assert len(records(caplog, logging.ERROR)) == 2

    os.unlink(path)  # gone: one more error, then quiet
    assert await live.check() is False
    assert await live.check() is False
    assert len(records(caplog, logging.ERROR)) == 3
    assert live.current() is good

    replace(path, clients_toml("a", "b"))
    assert await live.check() is True
    assert sorted(live.current().clients) == ["a", "b"]
    infos = [r for r in records(caplog, logging.INFO) if r.getMessage() == "clients file reloaded"]
    assert len(infos) == 1
    assert infos[0].__dict__["clients"] == 2

    # Failing again after a recovery is reported again, even for content seen before.
    replace(path, clients_toml("a", "b") + "max_concurrent = 0\n")
    assert await live.check() is False
    assert len(records(caplog, logging.ERROR)) == 4


async def test_an_empty_file_at_reload_is_a_bad_version(tmp_path: Path) -> None:
    # A rewrite in place is truncated first; that moment must not lock every client out.
    path = tmp_path / "clients.toml"
    path.write_text(clients_toml("a"))
    live = ClientsFile(path)
    path.write_text("")
    assert await live.check() is False
    assert list(live.current().clients) == ["a"]
    path.write_text("[clients]\n")
    assert await live.check() is True
    assert len(live.current()) == 0


async def test_a_kubernetes_style_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    """The kubelet's layout: clients.toml -> ..data/clients.toml, ..data -> ..<timestamp>/,
    updated by writing a new timestamped directory and renaming a new ..data link over
    the old one."""
    mount = tmp_path / "mount"
    mount.mkdir()

    def publish(version: str, text: str) -> None:
        directory = mount / f"..2026_12_01_{version}"
        directory.mkdir()
        (directory / "clients.toml").write_text(text)
        link = mount / "..data_tmp"
        link.symlink_to(directory.name)
        os.replace(link, mount / "..data")

    publish("1", clients_toml("a"))
    (mount / "clients.toml").symlink_to("..data/clients.toml")
    live = ClientsFile(mount / "clients.toml", reload_s=0.02)
    assert list(live.current().clients) == ["a"]
    async with live:
        first = live.current()
        # Same size, and the mtime may well be the same tick: the inode tells.
        publish("2", clients_toml("z"))
        await wait_for(lambda: live.current() is not first)
        assert list(live.current().clients) == ["z"]


async def test_stop_ends_the_poller(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(clients_toml("a"))
    live = ClientsFile(path, reload_s=0.01)
    await live.start()
    await live.start()  # idempotent
    await live.stop()
    replace(path, clients_toml("b"))
    await asyncio.sleep(0.1)
    assert list(live.current().clients) == ["a"]
    await live.stop()
