"""Connections as a flood or a careless peer makes them: raw TCP sockets from a chosen
loopback address (all of 127.0.0.0/8 is loopback on Linux, so a test can be two
callers), sending nothing, the HTTP/2 preface, or hand-made HTTP/2 frames.

Every helper is bounded in count and time; the sockets are the test's to close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS = 0x1, 0x3, 0x4
END_HEADERS, ACK = 0x4, 0x1
MAX_CONCURRENT_STREAMS = 0x3
REFUSED_STREAM = 0x7
WATCH = b"/grpc.health.v1.Health/Watch"


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream_id
    ) + payload  # fmt: skip


# What a client sends before its first call: the preface and its (empty) SETTINGS.
HELLO = PREFACE + frame(SETTINGS, 0, 0)


def call_headers(stream_id: int, path: bytes = WATCH) -> bytes:
    """A gRPC call's HEADERS frame, without END_STREAM: the call stays in flight.
    HPACK literals without indexing, so no encoder state is needed."""
    fields = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    block = b"".join(
        b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value for name, value in fields
    )
    return frame(HEADERS, END_HEADERS, stream_id, block)


def open_connections(
    port: int, count: int, *, source: str = "127.0.0.2", send: bytes = HELLO
) -> list[socket.socket]:
    """``count`` connections to 127.0.0.1:``port`` from ``source``, each sending ``send``
    (unless the server closed it at once: a flood does not stop for that)."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            opened.append(sock)
            sock.bind((source, 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            if send:
                with contextlib.suppress(OSError):
                    sock.sendall(send)
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def is_open(sock: socket.socket) -> bool:
    """Whether the server has not closed this connection (what it sent is read and
    dropped)."""
    sock.setblocking(False)
    try:
        for _ in range(1000):
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    return True


def still_open(sockets: Iterable[socket.socket]) -> list[socket.socket]:
    return [sock for sock in sockets if is_open(sock)]


def wait_for_open_count(
    sockets: list[socket.socket], expected: int, timeout_s: float
) -> list[socket.socket]:
    """The sockets still open once exactly ``expected`` are (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    alive = still_open(sockets)
    while len(alive) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = still_open(sockets)
    return alive


@dataclass(frozen=True)
class Frame:
    kind: int
    flags: int
    stream_id: int
    payload: bytes


def read_frames(sock: socket.socket, seconds: float) -> list[Frame]:
    """The frames the server sends within ``seconds`` (or until it closes)."""
    sock.settimeout(0.1)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        frames.append(Frame(data[3], data[4], stream_id, data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


def settings_of(frames: Iterable[Frame]) -> dict[int, int]:
    """The server's SETTINGS values (not its ACKs)."""
    values: dict[int, int] = {}
    for item in frames:
        if item.kind == SETTINGS and not item.flags & ACK:
            payload = item.payload
            for i in range(0, len(payload) - 5, 6):
                values[int.from_bytes(payload[i : i + 2], "big")] = int.from_bytes(
                    payload[i + 2 : i + 6], "big"
                )
    return values


def vm_hwm_kib(pid: int) -> int:
    """A process's peak resident memory (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")
