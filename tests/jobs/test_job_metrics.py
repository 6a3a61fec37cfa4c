"""The jobs' metrics on a real gateway: jobs by final state, each client's queue and
the age of its oldest queued job (labelled by the clients file's ids only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile, bearer
from google.longrunning import operations_pb2
from jobs_support import OPENAI_KEY, generation_job, stubs
from prometheus_client import generate_latest
from support.gateways import started_gateways

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


def _value(gateway: Gateway, series: str) -> float | None:
    for line in generate_latest(gateway.metrics.registry).decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


async def test_queue_and_state_metrics(emulator: Emulator, tmp_path: Path) -> None:
    clients = ClientsFile(tmp_path / "clients.toml")
    token = clients.add("team-a", max_concurrent=1)
    emulator.set_faults("latency;ms=1500")
    async with started_gateways(OPENAI_KEY, emulator.base_url, clients_file=clients.path) as start:
        gateway = await start()
        assert gateway.jobs is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            jobs, operations = stubs(channel)
            names = [
                (await jobs.SubmitImageJob(generation_job(f"{i}"), metadata=bearer(token))).name
                for i in range(3)
            ]
            await asyncio.sleep(0.5)
            await gateway.jobs.observe()
            queued = _value(gateway, 'imagegate_jobs{client="team-a",state="queued"}')
            running = _value(gateway, 'imagegate_jobs{client="team-a",state="running"}')
            oldest = _value(gateway, 'imagegate_jobs_oldest_queued_seconds{client="team-a"}')
            for name in names:
                await operations.WaitOperation(
                    operations_pb2.WaitOperationRequest(name=name), metadata=bearer(token)
                )
            await gateway.jobs.observe()
            after = _value(gateway, 'imagegate_jobs{client="team-a",state="queued"}')
            ended = _value(gateway, 'imagegate_jobs_ended_total{state="succeeded"}')
    assert (queued, running) == (2.0, 1.0)
    assert oldest is not None and oldest > 0.3
    assert after == 0.0
    assert ended == 3.0
