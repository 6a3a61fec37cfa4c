"""Three emulators as three upstreams (two OpenAI organisations with keys of their own,
one Azure OpenAI resource), an upstreams file naming them, and a gateway routing over it.

Every key is distinctive, so a test can search logs, statuses and metrics for it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway
from imagegate_server.settings import Settings

KEYS = {
    "openai-a": "sk-routetest-ALPHA-SECRETKEY-0123456789",
    "openai-b": "sk-routetest-BRAVO-SECRETKEY-9876543210",
    "azure-eu": "azurekeyCHARLIE0123456789abcdef0123456789",
}
MODEL = "gpt-image-2"
AZURE_DEPLOYMENT = "images-eu"
GENERATIONS = "/v1/images/generations"
AZURE_GENERATIONS = f"/openai/deployments/{AZURE_DEPLOYMENT}/images/generations"


@dataclass
class Upstreams:
    """The three emulators, by upstream name, and where the upstreams file is."""

    emulators: dict[str, Emulator]
    directory: Path
    file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.file = self.directory / "upstreams.toml"
        for name, key in KEYS.items():
            (self.directory / f"{name}.key").write_text(key + "\n")

    def entry(self, name: str, **fields: Any) -> str:
        """A ``[upstreams.NAME]`` table for one emulator, ``fields`` added or replaced."""
        emulator = self.emulators[name]
        values: dict[str, Any] = {"key_file": str(self.directory / f"{name}.key")}
        if name.startswith("azure"):
            values |= {
                "kind": "azure",
                "base_url": emulator.base_url,
                "api_version": "2025-04-01-preview",
                "deployments": {MODEL: AZURE_DEPLOYMENT},
            }
        else:
            values |= {"kind": "compatible", "base_url": emulator.base_url}
        values |= fields
        lines = [f"[upstreams.{name}]"]
        tables = []
        for key, value in values.items():
            if isinstance(value, dict):
                tables.append(f"[upstreams.{name}.{key}]")
                tables += [f'"{k}" = "{v}"' for k, v in value.items()]
            elif value is not None:
                lines.append(f"{key} = {_toml(value)}")
        return "\n".join(lines + tables) + "\n"

    def write(self, *entries: str) -> Path:
        """Write the file atomically (as an operator's tooling would)."""
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text("\n".join(entries))
        os.replace(tmp, self.file)
        return self.file

    def generations(self, name: str) -> int:
        """Requests that generated images (answered 200) at upstream ``name``."""
        path = AZURE_GENERATIONS if name.startswith("azure") else GENERATIONS
        return sum(1 for e in self.emulators[name].journal.by_path(path) if e.status == 200)

    def requests(self, name: str) -> int:
        return len(self.emulators[name].journal.entries)

    def reset(self) -> None:
        for emulator in self.emulators.values():
            emulator.reset()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@asynccontextmanager
async def three_upstreams(directory: Path) -> AsyncIterator[Upstreams]:
    emulators = {
        name: Emulator(
            EmulatorConfig(
                api_key=key,
                cached_renders=True,
                azure=name.startswith("azure"),
                azure_deployments={AZURE_DEPLOYMENT: MODEL} if name.startswith("azure") else {},
            )
        )
        for name, key in KEYS.items()
    }
    started: list[Emulator] = []
    try:
        for emulator in emulators.values():
            await emulator.start()
            started.append(emulator)
        yield Upstreams(emulators, directory)
    finally:
        for emulator in started:
            await emulator.stop()


def settings(upstreams_file: Path | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "upstreams_file": upstreams_file,
        "shutdown_grace_s": 0,
        "retry_backoff_s": 0.01,
        "upstreams_reload_s": 0.05,
        # The local result store's link port: any free one (other gateways run at once).
        "store_http_port": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def gateway(upstreams_file: Path | None, **overrides: Any) -> AsyncIterator[Gateway]:
    """A gateway routing over ``upstreams_file`` (None: the single-key settings)."""
    running = Gateway(settings(upstreams_file, **overrides))
    await running.start()
    try:
        yield running
    finally:
        await running.stop(0)


def generation(
    prompt: str = "a red fox", n: int = 1, output_format: int | None = None
) -> pb.CreateImageRequest:
    """A cheap call: gpt-image-2 at low quality, 1024x1024 (the emulators cache renders)."""
    parameters = params_pb2.GenerationParameters(
        prompt=prompt, model=MODEL, n=n, quality=params_pb2.QUALITY_LOW, size="1024x1024"
    )
    if output_format is not None:
        parameters.output_format = output_format  # type: ignore[assignment]
    return pb.CreateImageRequest(parameters=parameters)


@asynccontextmanager
async def stub_for(gateway: Gateway) -> AsyncIterator[images_service_pb2_grpc.ImagesServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield images_service_pb2_grpc.ImagesServiceStub(channel)


def metadata(token: str | None) -> Sequence[tuple[str, str]]:
    return () if token is None else (("authorization", f"Bearer {token}"),)
