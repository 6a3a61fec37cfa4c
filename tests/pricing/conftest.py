"""Fixtures for the pricing tests: the built-in table, and a real emulator on
127.0.0.1:0 with the official client, whose reported usage the table prices."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.pricing import PriceTable, load_prices

API_KEY = "sk-emulator-pricing-test"


@pytest.fixture(scope="session")
def table() -> PriceTable:
    return load_prices()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    # Cached renders: these tests read usage, not pixels, and render many images.
    async with Emulator(EmulatorConfig(api_key=API_KEY, cached_renders=True)) as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=API_KEY, base_url=emulator.base_url, max_retries=0, timeout=60
    )
