"""``imagegate healthcheck`` against a real grpc.aio server running grpc_health."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from imagegate_server import cli, healthcheck

SERVICE = "imagegate.v1.ImagesService"
# (target, grpc_health.v1.health.aio.HealthServicer): grpc_health ships no types.
HealthServer = tuple[str, Any]


def _run(argv: list[str]) -> int:
    """Parses argv with only the healthcheck command registered and runs it."""
    parser = argparse.ArgumentParser(prog="imagegate")
    healthcheck.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


async def _healthcheck(*argv: str) -> int:
    # The command blocks (sync gRPC); the server under test lives on this event loop.
    return await asyncio.to_thread(_run, ["healthcheck", *argv])


@pytest.fixture
async def health_server() -> AsyncIterator[HealthServer]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(grace=None)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_command_is_registered() -> None:
    assert "imagegate_server.healthcheck" in cli.COMMAND_MODULES


async def test_serving_returns_0(
    health_server: HealthServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target, servicer = health_server
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)

    assert await _healthcheck("--target", target) == 0
    assert await _healthcheck("--target", target, "--service", SERVICE) == 0
    assert capsys.readouterr().err == ""


async def test_not_serving_returns_1(
    health_server: HealthServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target, servicer = health_server
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)

    assert await _healthcheck("--target", target, "--service", SERVICE) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "NOT_SERVING" in err
    assert SERVICE in err
    assert "Traceback" not in err


async def test_unknown_service_returns_1(
    health_server: HealthServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target, _ = health_server
    assert await _healthcheck("--target", target, "--service", "no.such.Service") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "SERVICE_UNKNOWN" in err


async def test_nothing_listening_returns_1(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _healthcheck("--target", f"127.0.0.1:{closed_port}", "--timeout", "5")
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not reachable" in err
    assert "Traceback" not in err


async def test_shutdown_flips_to_not_serving(
    health_server: HealthServer,
) -> None:
    """What a server does on SIGTERM (enter_graceful_shutdown) fails the probe."""
    target, servicer = health_server
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert await _healthcheck("--target", target) == 0
    await servicer.enter_graceful_shutdown()
    assert await _healthcheck("--target", target) == 1
