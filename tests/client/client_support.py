"""Helpers shared by the client tests."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from support.gateways import gateway_settings

from imagegate_server.cli import build_parser
from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The real ``imagegate`` parser, so the tests see what users get."""
    return build_parser().parse_args(list(argv))


# Distinctive, so a test can check that it never reaches a caller.
OPENAI_KEY = "sk-clienttest-SECRETKEY-0123456789abcdef"
NEWER_MODEL = "gpt-image-9"
"""Served by the emulator below but unknown to the gateway's model table (as a model
OpenAI has just shipped): what the gateway passes through unvalidated."""


@contextlib.asynccontextmanager
async def gateway_on_emulator(**settings: Any) -> AsyncIterator[tuple[str, Emulator]]:
    """A real gateway on 127.0.0.1:0 in front of a real emulator: (target, emulator).

    In this process and on the test's event loop, so a test can set the emulator's
    faults (``emulator.set_faults(...)``) and read its journal around a CLI run.
    """
    config = EmulatorConfig(
        api_key=OPENAI_KEY, cached_renders=True, extra_models=frozenset({NEWER_MODEL})
    )
    async with Emulator(config) as emulator:
        gateway = Gateway(gateway_settings(OPENAI_KEY, emulator.base_url, **settings))
        await gateway.start()
        try:
            yield f"127.0.0.1:{gateway.port}", emulator
        finally:
            await gateway.stop(0)
