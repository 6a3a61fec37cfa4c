"""Callers' connections are bounded: those that start no call and those left idle are
closed after their settings' time, an address past its cap loses its newest idle
connections, and a connection carries at most so many calls at once. Callers that
play by gRPC's rules see none of it: their clients reconnect by themselves.

Raw sockets come from 127.0.0.2 and 127.0.0.3 (loopback too), real gRPC callers from
127.0.0.1, so that the per-address cap can tell them apart.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.connections import (
    ACK,
    HELLO,
    MAX_CONCURRENT_STREAMS,
    PREFACE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    call_headers,
    close_all,
    frame,
    open_connections,
    read_frames,
    settings_of,
    still_open,
    wait_for_open_count,
)
from tls.tls_support import CertificateAuthority

from imagegate_server.gateway.server import Gateway

READY = grpc.ChannelConnectivity.READY


def closed_count(gateway: Gateway, reason: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "imagegate_connections_closed_total", {"port": "grpc", "reason": reason}
    )
    return value or 0.0


async def check(channel: grpc.aio.Channel, wait_for_ready: bool = False) -> int:
    request = health_pb2.HealthCheckRequest()
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(request, timeout=10, wait_for_ready=wait_for_ready)
    status: int = answer.status
    return status


async def until_not_ready(channel: grpc.aio.Channel, timeout_s: float) -> None:
    """Until the channel's connection is gone (the server closed it)."""
    async with asyncio.timeout(timeout_s):
        while channel.get_state() == READY:
            await channel.wait_for_state_change(READY)


async def test_connections_that_start_no_call_are_closed_and_callers_are_not(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(
        connection_first_call_timeout_s=1.0, connection_idle_timeout_s=120.0
    )
    port = gateway.port
    silent = await asyncio.to_thread(open_connections, port, 4, send=b"")
    preface_only = await asyncio.to_thread(open_connections, port, 4, send=PREFACE)
    settled = await asyncio.to_thread(open_connections, port, 4, send=HELLO)
    raw = silent + preface_only + settled
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
            alive = await asyncio.to_thread(wait_for_open_count, raw, 0, 15.0)
            assert alive == []
            # The caller's connection made a call: it outlives the deadline.
            assert channel.get_state() == READY
        # Only the guard closes connections that sent their SETTINGS (gRPC's own
        # handshake deadline ends the others, and its idle timeout is 120 s).
        assert closed_count(gateway, "no_call") >= len(settled)
    finally:
        close_all(raw)


async def test_callers_reconnect_by_themselves_after_first_call_and_idle_timeouts(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(
        connection_first_call_timeout_s=0.5, connection_idle_timeout_s=1.5
    )
    target = f"127.0.0.1:{gateway.port}"
    # Each channel its own connection (channels share them by default).
    own = [("grpc.use_local_subchannel_pool", 1)]
    async with (
        grpc.aio.insecure_channel(target, options=own) as early,
        grpc.aio.insecure_channel(target, options=own) as idle,
        grpc.aio.insecure_channel(target, options=own) as busy,
    ):
        # A connection that keeps calling is never closed, whatever the timeouts.
        assert await check(busy) == health_pb2.HealthCheckResponse.SERVING
        busy_states: list[grpc.ChannelConnectivity] = []
        keep_calling = asyncio.create_task(calls_every_100ms(busy, busy_states))
        try:
            # Connected long before its first call: the connection is closed...
            await early.channel_ready()
            await until_not_ready(early, 15.0)
            # ... and the first call opens a new one, with no error.
            assert await check(early) == health_pb2.HealthCheckResponse.SERVING
            # Idle after a call: closed after the idle timeout; the next call works.
            assert await check(idle) == health_pb2.HealthCheckResponse.SERVING
            await until_not_ready(idle, 15.0)
            assert await check(idle) == health_pb2.HealthCheckResponse.SERVING
        finally:
            keep_calling.cancel()
        assert busy_states == [READY]


async def calls_every_100ms(
    channel: grpc.aio.Channel, states: list[grpc.ChannelConnectivity]
) -> None:
    """Calls until cancelled, noting each state the channel was in for a call."""
    while True:
        assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
        if channel.get_state() not in states:
            states.append(channel.get_state())
        await asyncio.sleep(0.1)


async def test_an_address_past_its_cap_loses_its_newest_idle_connections(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(
        max_connections_per_address=4,
        connection_first_call_timeout_s=60.0,
        connection_idle_timeout_s=120.0,
    )
    port = gateway.port
    # From 127.0.0.2: four idle connections, then six newer ones with a call in
    # flight (a health Watch whose request never comes): ten, six past the cap.
    idle = await asyncio.to_thread(open_connections, port, 4)
    busy = await asyncio.to_thread(open_connections, port, 6, send=HELLO + call_headers(1))
    # From 127.0.0.3: nine idle connections, five past the cap.
    other = await asyncio.to_thread(open_connections, port, 9, source="127.0.0.3")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as caller:
            alive_other = await asyncio.to_thread(wait_for_open_count, other, 4, 15.0)
            alive_idle = await asyncio.to_thread(wait_for_open_count, idle, 0, 15.0)
            # A few more sweeps: nothing else goes.
            await asyncio.sleep(1.0)
            # Four of 127.0.0.3's stay, five went.
            assert len(alive_other) == 4
            assert still_open(other) == alive_other
            # Calls in flight are never cut: 127.0.0.2 keeps its six busy
            # connections (over its cap) and loses the idle ones instead.
            assert alive_idle == []
            assert still_open(busy) == busy
            assert closed_count(gateway, "per_address") == 5 + 4
            # Another address is not affected.
            assert await check(caller) == health_pb2.HealthCheckResponse.SERVING
    finally:
        close_all(idle + busy + other)


async def test_calls_past_the_cap_of_one_connection_are_refused(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(max_calls_per_connection=3)

    def five_calls_on_one_connection() -> tuple[dict[int, int], set[int]]:
        (sock,) = open_connections(gateway.port, 1)
        try:
            advertised = settings_of(read_frames(sock, 0.5))
            sock.sendall(frame(SETTINGS, ACK, 0))
            sock.sendall(b"".join(call_headers(stream_id) for stream_id in (1, 3, 5, 7, 9)))
            refused = {
                f.stream_id
                for f in read_frames(sock, 1.5)
                if f.kind == RST_STREAM and int.from_bytes(f.payload, "big") == REFUSED_STREAM
            }
            return advertised, refused
        finally:
            sock.close()

    advertised, refused = await asyncio.to_thread(five_calls_on_one_connection)
    assert advertised[MAX_CONCURRENT_STREAMS] == 3
    assert refused == {7, 9}


async def test_tls_connections_are_bounded_the_same_way(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    ca = CertificateAuthority()
    cert, key = ca.server().write(tmp_path, "server")
    gateway = await start_gateway(
        tls_cert_file=cert,
        tls_key_file=key,
        connection_first_call_timeout_s=1.0,
        connection_idle_timeout_s=120.0,
    )
    # No TLS handshake at all, or a handshake and no call: both closed.
    silent = await asyncio.to_thread(open_connections, gateway.port, 3, send=b"")
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem)
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{gateway.port}", credentials) as channel:
            await channel.channel_ready()
            await until_not_ready(channel, 15.0)
            assert await asyncio.to_thread(wait_for_open_count, silent, 0, 15.0) == []
            # The client reconnects (a new TLS handshake) for its call.
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
        assert closed_count(gateway, "no_call") >= 1
    finally:
        close_all(silent)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_an_ipv6_address_is_capped_too(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(
        host="[::1]", max_connections_per_address=3, connection_first_call_timeout_s=60.0
    )

    def five_from_ipv6() -> list[socket.socket]:
        opened = []
        for _ in range(5):
            sock = socket.create_connection(("::1", gateway.port), timeout=10)
            opened.append(sock)
            sock.sendall(HELLO)
        return opened

    raw = await asyncio.to_thread(five_from_ipv6)
    try:
        assert len(await asyncio.to_thread(wait_for_open_count, raw, 3, 15.0)) == 3
        await asyncio.sleep(1.0)
        assert len(still_open(raw)) == 3
        assert closed_count(gateway, "per_address") == 2
    finally:
        close_all(raw)
