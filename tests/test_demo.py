"""``imagegate demo`` prints exactly the prompts it sends.

The demo's steps run against a real gateway on a real emulator whose journal shows
what went upstream. (That the whole command stays offline whatever key is configured
is test_startup's.)
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2_grpc
from support.gateways import started_gateways

from imagegate_server import demo
from imagegate_server.emulator import Emulator, EmulatorConfig

KEY = "sk-demotest-0123456789"


async def test_the_printed_prompts_are_the_prompts_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        Emulator(EmulatorConfig(api_key=KEY, cached_renders=True)) as emulator,
        started_gateways(KEY, emulator.base_url) as start,
    ):
        gateway = await start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            written = await demo._make_images(
                images_service_pb2_grpc.ImagesServiceStub(channel), tmp_path
            )
    sent = [
        entry.json["prompt"] if entry.json is not None else entry.form_values("prompt")[0]
        for entry in emulator.journal.entries
    ]
    printed = re.findall(r"^Create\w+: [^']*'([^']*)'", capsys.readouterr().out, re.MULTILINE)
    assert printed == sent
    assert len(sent) == 4 and len(written) == 7
    # The stored image, fetched by its link as printed.
    assert written[-1].read_bytes().startswith(b"\x89PNG")
