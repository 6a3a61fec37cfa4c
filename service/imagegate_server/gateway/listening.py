"""How the gateway's gRPC servers listen: the main server's channel options, binding
a port (TLS or plaintext), and the plaintext health-only server for kubelet probes.

Each server is made with its channelz id (:func:`new_server`), by which the guard of
its connections (:mod:`.connections`) finds them.
"""

from __future__ import annotations

import math

import grpc
from grpc_health.v1 import health_pb2_grpc

from imagegate_server.errors import StartupError
from imagegate_server.gateway.connections import ConnectionLimits, channelz
from imagegate_server.settings import Settings
from imagegate_server.tls import ServerCertificates


def new_server(options: list[tuple[str, int]]) -> tuple[grpc.aio.Server, int | None]:
    """A server and its channelz id (None if channelz shows none)."""
    before = channelz.server_ids()
    server = grpc.aio.server(options=options)
    return server, channelz.new_server_id(before)


def server_options(settings: Settings, limits: ConnectionLimits) -> list[tuple[str, int]]:
    return [
        *limits.grpc_options(),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        # Several workers share the port only when the supervisor says so.
        ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
        *_receive_window(settings.receive_window_bytes),
        # Calls that arrive faster than the event loop accepts them wait in gRPC
        # core, which cancels them past this many (default 1000): a burst of new
        # calls would fail before reaching the servicer.
        ("grpc.server.max_pending_requests", settings.max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", 2 * settings.max_pending_calls),
        # ... and cancels those waiting longer than this (default 30 s); a caller's
        # own deadline still ends the wait sooner.
        ("grpc.server_max_unrequested_time_in_server", math.ceil(settings.upstream_timeout_s)),
    ]


def _receive_window(window_bytes: int) -> list[tuple[str, int]]:
    """A fixed per-call window; gRPC's default BDP probing grows it with the link."""
    if window_bytes == 0:
        return []
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window_bytes)]


def bind(
    server: grpc.aio.Server,
    host: str,
    port: int,
    certificates: ServerCertificates | None = None,
) -> int:
    address = f"{host}:{port}"
    try:
        if certificates is not None:
            return server.add_secure_port(address, certificates.credentials())
        return server.add_insecure_port(address)
    except RuntimeError:  # gRPC says only "Failed to bind"
        raise StartupError(
            f"cannot listen on {address}: the address is in use or not available here"
        ) from None


def health_server(
    servicer: object, reuse_port: bool, limits: ConnectionLimits
) -> tuple[grpc.aio.Server, int | None]:
    """grpc.health.v1 alone, always plaintext (kubelets present no certificates),
    sharing the main port's HealthServicer so that draining shows on both; with its
    own connection limits, so that probes get through a flood of the main port."""
    server, server_id = new_server(
        [("grpc.so_reuseport", 1 if reuse_port else 0), *limits.grpc_options()]
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return server, server_id
