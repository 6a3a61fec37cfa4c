"""What every route of one running emulator shares: its config, journal, URL store,
render pool and fault counters, reachable from a request as ``request.app[STATE]``."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from imagegate_server.emulator.config import EmulatorConfig
from imagegate_server.emulator.faults import FaultInjector
from imagegate_server.emulator.journal import Journal
from imagegate_server.emulator.renderer import Renderer
from imagegate_server.emulator.urls import UrlStore


@dataclass
class EmulatorState:
    config: EmulatorConfig
    journal: Journal
    urls: UrlStore
    executor: ThreadPoolExecutor
    renderer: Renderer
    faults: FaultInjector = field(default_factory=FaultInjector)
    default_faults: str = ""
    """Faults for requests without a fault header; replaced at runtime by the control
    route or :meth:`Emulator.set_faults`."""
    in_flight: int = 0
    """Images requests being answered (the x-ratelimit-remaining-requests header)."""
    rng: random.Random = field(default_factory=random.Random)
    """Draws simulated latencies (not images: those are deterministic)."""


STATE = web.AppKey("state", EmulatorState)
