"""Closing connections that gRPC core holds, from outside it.

gRPC has no call to close one connection of a server. The kernel can: shutting a
TCP socket down (``shutdown(2)``) sends the peer a FIN and wakes gRPC, which reads
end-of-stream, tears the connection down and closes its descriptor itself. Nothing
is closed under gRPC's feet, so no descriptor number gRPC still uses is freed.

Which descriptor is the connection: the network namespace's socket table
(``/proc/self/net/tcp``, ``tcp6``) gives the socket (inode) for a local port and a
peer address, and ``/proc/self/fd`` the descriptor of this process that holds it.
The descriptor is duplicated and its inode checked before the shutdown, so a number
that gRPC closed and reused meanwhile can never shut the wrong socket down. A
listening socket is never a candidate (its peer port is 0).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable

_TABLES = ("/proc/self/net/tcp", "/proc/self/net/tcp6")
_FDS = "/proc/self/fd"
_LISTEN = "0A"


def shut_down(local_port: int, peers: Iterable[tuple[str, int]]) -> int:
    """Shut down this process's connections on ``local_port`` from these peers
    (address, port); returns how many. Peers it cannot find are skipped (they
    closed meanwhile, or another process holds them)."""
    wanted = set(peers)
    if not wanted:
        return 0
    inodes = _inodes(local_port, wanted)
    if not inodes:
        return 0
    done = 0
    for inode, fd in _descriptors(inodes).items():
        if _shut_down(fd, inode):
            done += 1
    return done


def available() -> bool:
    """Whether this system shows its sockets the way this module reads them (Linux)."""
    return all(os.path.exists(path) for path in (*_TABLES, _FDS))


def _inodes(local_port: int, wanted: set[tuple[str, int]]) -> set[int]:
    suffix = f":{local_port:04X}"
    found: set[int] = set()
    for table in _TABLES:
        try:
            with open(table) as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split()
                    if len(fields) < 10 or not fields[1].endswith(suffix):
                        continue
                    if fields[3] == _LISTEN or (_peer(fields[2]) not in wanted):
                        continue
                    found.add(int(fields[9]))
        except OSError:
            continue
    found.discard(0)
    return found


def _peer(field: str) -> tuple[str, int]:
    """``0100007F:C6FA`` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host
    (little-endian) order, as (address, port); IPv4-mapped addresses as IPv4."""
    hex_address, _, hex_port = field.partition(":")
    raw = bytes.fromhex(hex_address)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address), int(hex_port, 16)


def _descriptors(inodes: set[int]) -> dict[int, int]:
    """inode -> one descriptor of this process that holds it."""
    found: dict[int, int] = {}
    try:
        names = os.listdir(_FDS)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"{_FDS}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = int(target[8:-1])
            if inode in inodes:
                found[inode] = int(name)
    return found


def _shut_down(fd: int, inode: int) -> bool:
    try:
        copy = os.dup(fd)
    except OSError:  # closed meanwhile, or no descriptor left for the copy
        return False
    try:
        if os.fstat(copy).st_ino != inode:
            return False  # the number now names another file
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=copy)
            try:
                sock.shutdown(socket.SHUT_RDWR)
                return True
            finally:
                sock.detach()
        return False
    finally:
        os.close(copy)
