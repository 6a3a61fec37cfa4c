"""Ports every worker binds: reserved by the supervisor for its whole life.

The supervisor binds (without listening) a socket with SO_REUSEPORT on the port,
as grpc's multiprocessing example does: with ``--port 0`` this is how one free
port is chosen for all workers, and with a fixed port it makes a port that some
other program holds fail at once, in one line, instead of in every worker. A
socket that does not listen gets no connections, so all traffic goes to the
workers.
"""

from __future__ import annotations

import socket

from imagegate_server.errors import StartupError


def reserve(host: str, port: int, what: str) -> socket.socket:
    """A bound, non-listening SO_REUSEPORT socket on ``host:port``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise StartupError(f"{what}: cannot resolve the address {host!r}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise StartupError(
            f"{what}: cannot listen on {host}:{port}: the address is in use or not available here"
        ) from None
    return sock


def bound_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port
