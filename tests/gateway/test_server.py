"""The running service: `imagegate serve`, configuration, health, reflection, draining."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
from gateway_support import OPENAI_KEY, GatewayFactory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.serve import clean_env, serve

from imagegate_server.emulator import Emulator

SERVICE = "imagegate.v1.ImagesService"
REQUEST = pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt="a cat"))


async def test_serve_without_a_key_runs_on_the_embedded_emulator(tmp_path: Path) -> None:
    with serve(["--port", "0"], clean_env(), tmp_path) as server:
        port = await server.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SERVICE):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            reply = await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(REQUEST)
            assert reply.result.images[0].data.startswith(b"\x89PNG")
            names = await _reflected_services(channel)
            assert SERVICE in names and "grpc.health.v1.Health" in names
        server.terminate()
        assert await server.exited(20) == 0
    lines = server.lines
    first = json.loads(lines[0])
    assert "emulator" in first["msg"] and "no OpenAI key" in first["msg"]
    assert all(json.loads(line) for line in lines)  # every log line is JSON
    (serving,) = [json.loads(line) for line in lines if json.loads(line)["msg"] == "serving"]
    assert serving["event_loop"] == "uvloop"  # installed with the server: the default


async def _reflected_services(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> object:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for answer in stub.ServerReflectionInfo(one()):
        return {s.name for s in answer.list_services_response.service}
    return set()


async def test_the_key_can_come_from_a_mounted_file(
    tmp_path: Path, start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    key_file = tmp_path / "openai_api_key"
    key_file.write_text(OPENAI_KEY + "\n")
    gateway = await start_gateway(openai_api_key=None, openai_api_key_file=key_file)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        reply = await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(REQUEST)
    assert len(reply.result.images) == 1
    assert gateway.emulator is None  # it talked to the configured upstream, with that key


async def test_draining_warns_then_refuses_new_calls_and_finishes_in_flight_ones(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway(drain_notice_s=1.5)
    emulator.set_faults("latency;ms=3000")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        images = images_service_pb2_grpc.ImagesServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service=SERVICE)
        in_flight = images.CreateImage(REQUEST)
        await emulator.journal.wait_for(lambda entries: bool(entries), timeout_s=5)
        stopping = asyncio.create_task(gateway.stop(10))
        # The notice: health says NOT_SERVING, yet the server still answers.
        answer = await health.Check(check)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Then new calls are refused ...
        refused = None
        for _ in range(100):
            try:
                await health.Check(check)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.CANCELLED:
                    # gRPC core cancels a call it accepted but had not yet dispatched
                    # when the stop began (seen on a loaded machine); the next is refused.
                    continue
                refused = error
                break
            await asyncio.sleep(0.05)
        assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE
        # ... while the call in flight completes.
        reply = await in_flight
        await stopping
    assert len(reply.result.images) == 1


async def test_http2_upstream_setting_serves_calls(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    # Over plain http httpx speaks HTTP/1.1 even with HTTP/2 enabled (no ALPN); the
    # point is that the setting's dependency (h2) is installed and the path works.
    gateway = await start_gateway(http2=True, max_connections=600)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        replies = await asyncio.gather(*(stub.CreateImage(REQUEST) for _ in range(4)))
    assert all(len(reply.result.images) == 1 for reply in replies)
    assert len(emulator.journal.by_path("/v1/images/generations")) == 4
