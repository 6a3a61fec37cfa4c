"""The event loop serve runs on: uvloop when installed (auto), or what the setting says."""

from __future__ import annotations

import asyncio

import pytest

from imagegate_server import eventloop
from imagegate_server.errors import StartupError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_and_uvloop_run_on_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert eventloop.run(_loop_module(), "auto").startswith("uvloop")
    assert eventloop.run(_loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert eventloop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_uvloop_required_but_missing_stops_the_start_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(eventloop.importlib.util, "find_spec", lambda name: None)
    assert eventloop.run(_loop_module(), "auto").startswith("asyncio")
    with pytest.raises(StartupError, match="uvloop is not installed"):
        eventloop.run(_loop_module(), "uvloop")
