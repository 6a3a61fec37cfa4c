"""Result store fixtures: both backends behind one fixture (a local directory with its
link port, and a real S3-compatible server), real-size images, a settable clock; and
for stored delivery, gateways storing to either backend in front of an emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from delivery_support import KEY, NEWER_MODEL, store_overrides
from store_support import Clock, s3_settings, store_settings
from support.gateways import GatewayFactory, started_gateways
from weed_support import WeedServer

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.emulator.render import RenderSpec
from imagegate_server.emulator.renderer import Renderer
from imagegate_server.settings import Settings
from imagegate_server.store import RunningStore, open_store


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    """One SeaweedFS for the session; tests keep apart by key prefix."""
    with WeedServer(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Each backend in turn: what users rely on is the same on both."""
    if request.param == "local":
        return store_settings("local", tmp_path)
    return s3_settings(request.getfixturevalue("weed"), tmp_path)


@pytest.fixture
async def running(backend_settings: Settings) -> AsyncIterator[RunningStore]:
    running = await open_store(backend_settings)
    yield running
    await running.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def real_images() -> list[bytes]:
    """Four PNGs of gpt-image-2's 1536x1024 at medium quality, as large as OpenAI's
    (about 2.5 MB each), each different."""
    renderer = Renderer(cached=True, real_sizes=True)
    return [
        renderer.generate(RenderSpec("a lighthouse at dusk", "gpt-image-2", 1536, 1024, index))
        for index in range(4)
    ]


@pytest.fixture(params=["local", "s3"])
def gateway_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Each backend in turn, as a gateway's settings."""
    weed = request.getfixturevalue("weed") if request.param == "s3" else None
    return store_overrides(request.param, tmp_path, weed)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(api_key=KEY, cached_renders=True, extra_models=frozenset({NEWER_MODEL}))
    async with Emulator(config) as running:
        yield running


@pytest.fixture
async def start(emulator: Emulator, gateway_store: dict[str, Any]) -> AsyncIterator[GatewayFactory]:
    """``await start(**settings)``: a gateway storing to the backend of this run."""
    async with started_gateways(
        KEY, emulator.base_url, retry_backoff_s=0.01, **gateway_store
    ) as factory:
        yield factory
