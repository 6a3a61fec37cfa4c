"""Three upstreams on loopback for every routing test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from routing_support import Upstreams, three_upstreams


@pytest.fixture
async def upstreams(tmp_path: Path) -> AsyncIterator[Upstreams]:
    async with three_upstreams(tmp_path) as running:
        yield running
