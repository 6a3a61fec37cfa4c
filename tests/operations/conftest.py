"""An emulator and gateways in front of it, in the test's process (for the health
port, the metrics endpoint and port sharing; the supervisor tests run processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from operations_support import OPENAI_KEY, GatewayFactory
from support.gateways import started_gateways

from imagegate_server.emulator import Emulator, EmulatorConfig


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


@pytest.fixture
async def start_gateway(emulator: Emulator) -> AsyncIterator[GatewayFactory]:
    """``await start_gateway(**settings)``: a started gateway in front of ``emulator``."""
    async with started_gateways(OPENAI_KEY, emulator.base_url) as start:
        yield start
