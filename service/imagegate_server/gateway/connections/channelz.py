"""A server's connections as gRPC core itself counts them: its channelz registry.

grpc.aio shows a server no connection at all, only calls. Channelz (on by default in
gRPC core) keeps a node per server and per connection, with the peer's address and
the streams it started; the functions that read it are grpcio's own (the ones its
``grpcio-channelz`` service calls), reached here directly: that package would only
wrap them in a gRPC service. They answer JSON, one page of connections at a time.

Costs, measured with grpcio 1.85: listing connections about 2 microseconds each;
the streams of one connection about 100 (gRPC core asks its transport), so
:mod:`.guard` asks for them only when it must decide about that connection.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from grpc._cython import cygrpc  # type: ignore[attr-defined]  # no stubs

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Connection:
    """One accepted connection of a server."""

    socket_id: int
    """Channelz's id: unique in the process, and larger for newer connections."""
    address: str
    """The peer's IP address (an IPv4-mapped IPv6 address as IPv4)."""
    port: int


@dataclass(frozen=True, slots=True)
class Streams:
    started: int
    """Calls (streams) the peer started on the connection, ever."""
    in_flight: int
    """Of those, the ones not finished yet."""


def server_ids() -> set[int]:
    """The ids of every gRPC server of this process."""
    ids: set[int] = set()
    start = 0
    while True:
        page = _json(cygrpc.channelz_get_servers(start))
        servers = page.get("server", [])
        found = [int(server["ref"]["serverId"]) for server in servers]
        ids.update(found)
        if page.get("end", False) or not found:
            return ids
        start = max(found) + 1


def new_server_id(before: set[int]) -> int | None:
    """The server created since ``server_ids()`` returned ``before`` (the newest if
    several were); None if channelz shows none."""
    created = server_ids() - before
    return max(created) if created else None


def connections(server_id: int) -> list[Connection] | None:
    """The server's connections now; None if the server is gone."""
    found: list[Connection] = []
    start = 0
    while True:
        try:
            page = _json(cygrpc.channelz_get_server_sockets(server_id, start, _PAGE))
        except ValueError:  # the server stopped and left the registry
            return None
        refs = page.get("socketRef", [])
        for ref in refs:
            connection = _connection(int(ref["socketId"]), str(ref.get("name", "")))
            if connection is not None:
                found.append(connection)
        if page.get("end", False) or not refs:
            return found
        start = int(refs[-1]["socketId"]) + 1


def streams(socket_id: int) -> Streams | None:
    """The streams of a connection; None if it is gone (closed meanwhile)."""
    try:
        data = _json(cygrpc.channelz_get_socket(socket_id))["socket"].get("data", {})
    except (ValueError, KeyError):
        return None
    started = int(data.get("streamsStarted", 0))
    ended = int(data.get("streamsSucceeded", 0)) + int(data.get("streamsFailed", 0))
    return Streams(started=started, in_flight=max(0, started - ended))


def _connection(socket_id: int, name: str) -> Connection | None:
    """From a connection's channelz name, ``chttp2 ipv4:10.0.0.7:51234`` or
    ``chttp2 ipv6:%5B::1%5D:51234``; None for any other form."""
    _, _, peer = name.partition(" ")
    scheme, _, rest = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return None
    host, _, port = unquote(rest).rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        port_number = int(port)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return Connection(socket_id, str(address), port_number)


def _json(raw: bytes | str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(raw)
    return parsed
