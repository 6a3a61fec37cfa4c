"""A real emulator and a real gateway on 127.0.0.1:0, and a client with default limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from gateway_support import NEWER_MODEL, OPENAI_KEY, GatewayFactory
from imagegate.v1 import images_service_pb2_grpc
from support.gateways import started_gateways

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        api_key=OPENAI_KEY, cached_renders=True, extra_models=frozenset({NEWER_MODEL})
    )
    async with Emulator(config) as running:
        yield running


@pytest.fixture
async def start_gateway(emulator: Emulator) -> AsyncIterator[GatewayFactory]:
    """``await start_gateway(**settings)``: a gateway in front of ``emulator``."""
    async with started_gateways(OPENAI_KEY, emulator.base_url, retry_backoff_s=0.01) as start:
        yield start


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    return await start_gateway()


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    # Default client options: in particular gRPC's 4 MiB receive limit.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> images_service_pb2_grpc.ImagesServiceStub:
    return images_service_pb2_grpc.ImagesServiceStub(channel)
