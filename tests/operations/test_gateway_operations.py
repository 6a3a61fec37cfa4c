"""One gateway process: its metrics endpoint, its plaintext health port, and who may
share its port."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from operations_support import GatewayFactory
from prometheus_client.parser import text_string_to_metric_families

from imagegate_server.errors import StartupError
from imagegate_server.gateway.services import HEALTH_SERVICES, LIVENESS, READINESS, SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REQUEST = pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt="a cat"))


async def _get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """A bare HTTP/1.1 GET over loopback (the endpoint's whole protocol surface)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


async def _check(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        status: int = response.status
        return status


async def test_metrics_are_served_in_the_text_format_on_their_own_port(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(metrics_port=0)
    assert gateway.metrics_port not in (0, gateway.port)
    gateway.metrics.images("gpt-image-1.5", "generation", 2)
    status, headers, body = await _get(gateway.metrics_port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("imagegate_server_starts_total", ())] == 1
    images = ("imagegate_images_total", (("model", "gpt-image-1.5"), ("operation", "generation")))
    assert samples[images] == 2
    assert samples[("imagegate_limiter_up", ())] == 1


async def test_the_metrics_port_serves_nothing_but_metrics(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(metrics_port=0)
    for path in ("/", "/metrics/", "/debug", "/v1/images/generations"):
        status, _, _ = await _get(gateway.metrics_port, path)
        assert status == 404, path


async def test_no_metrics_port_unless_configured(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()
    assert gateway.metrics_port == 0


async def test_upstream_up_reports_the_start_up_probe(start_gateway: GatewayFactory) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        down = await start_gateway(openai_base_url=dead_url)
    up = await start_gateway()
    for gateway, expected in ((down, 0), (up, 1)):
        for _ in range(200):
            got = gateway.metrics.registry.get_sample_value(
                "imagegate_upstream_up", {"upstream": "default"}
            )
            if got == expected:
                break
            await asyncio.sleep(0.02)
        assert got == expected


async def test_the_health_port_answers_every_health_service(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(health_port=0)
    assert gateway.health_port not in (0, gateway.port)
    assert set(HEALTH_SERVICES) == {"", SERVICE_NAME, READINESS, LIVENESS}
    for service in HEALTH_SERVICES:
        assert await _check(gateway.health_port, service) == SERVING
        assert await _check(gateway.port, service) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await _check(gateway.health_port, "no-such-service")
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_the_health_port_serves_no_images(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(health_port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.health_port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateImage(REQUEST, timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_draining_fails_readiness_on_both_ports_and_keeps_liveness(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(health_port=0, drain_notice_s=1.5)
    health_port, port = gateway.health_port, gateway.port
    stopping = asyncio.create_task(gateway.stop())
    try:
        await asyncio.sleep(0.3)  # inside the notice: both servers still answer
        for where in (health_port, port):
            assert await _check(where, READINESS) == NOT_SERVING
            assert await _check(where, "") == NOT_SERVING
            assert await _check(where, SERVICE_NAME) == NOT_SERVING
            assert await _check(where, LIVENESS) == SERVING
    finally:
        await stopping
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await _check(health_port, LIVENESS)
    assert gone.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_one_process_does_not_share_its_port(start_gateway: GatewayFactory) -> None:
    first = await start_gateway()
    with pytest.raises(StartupError, match=f"127.0.0.1:{first.port}"):
        await start_gateway(port=first.port)


async def test_workers_share_a_port_when_told_to(start_gateway: GatewayFactory) -> None:
    first = await start_gateway(reuse_port=True, health_port=0)
    second = await start_gateway(reuse_port=True, port=first.port, health_port=first.health_port)
    assert (second.port, second.health_port) == (first.port, first.health_port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        response = await stub.CreateImage(REQUEST, timeout=30)
    assert len(response.result.images) == 1
