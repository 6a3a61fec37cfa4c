"""Settings of serving callers over gRPC: the address, the connections callers may
hold, and the messages of a call (upload sizes, spooling and pace, result sizes)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from imagegate_server.settings.units import MIB


class ListeningSettings(BaseModel):
    """Where the gRPC server listens."""

    host: str = "127.0.0.1"
    """Address the gRPC server binds."""
    port: int = Field(default=50051, ge=0, le=65535)
    """gRPC port; 0 picks a free one (see ``--port-file``)."""


class CallerConnectionsSettings(BaseModel):
    """How many connections callers may hold, and for how long."""

    max_caller_connections: int = Field(default=16384, ge=1, le=1 << 30)
    """Connections from callers one process holds at once, every address together
    (with workers: each worker). Past it gRPC closes new connections as they arrive.
    Whatever this says, callers get at most half the open-file limit (raised to its
    hard limit at start): the other half stays for the upstream pool, Redis, upload
    spool files and the health port."""
    max_connections_per_address: int = Field(default=256, ge=1)
    """Connections one caller address may hold in one process. Past it, within a
    second, its newest connections without a call in flight are closed. Callers
    behind one NAT or proxy share its address: raise it for them."""
    max_calls_per_connection: int = Field(default=1000, ge=1, le=1 << 30)
    """Concurrent calls (HTTP/2 streams) on one connection. A gRPC client queues its
    calls past it; a peer that does not gets them refused (REFUSED_STREAM)."""
    connection_first_call_timeout_s: float = Field(default=10.0, gt=0, le=86400)
    """A connection that has started no call this long after it opened is closed
    (this also bounds its TLS handshake). A gRPC client whose connection was closed
    so reconnects by itself at its next call."""
    connection_idle_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    """A connection with no call in flight for this long is closed (with an HTTP/2
    GOAWAY; the client reconnects at its next call)."""


class MessagesSettings(BaseModel):
    """What one call may send and receive: uploads (size, spooling, pace) and results."""

    max_request_bytes: int = Field(default=256 * MIB, ge=1)
    """Gateway cap of all uploaded bytes of one call (RESOURCE_EXHAUSTED past it)."""
    max_file_bytes: int = Field(default=50 * MIB, ge=1)
    """Cap per uploaded file when the model is unknown (known models use OpenAI's caps)."""
    spool_threshold_bytes: int = Field(default=1 * MIB, ge=0)
    """Upload bytes one call holds in memory, all its files together; past it, its
    files go to unlinked temporary files in ``spool_dir``."""
    spool_dir: Path | None = None
    """Where uploads past ``spool_threshold_bytes`` wait for the upstream call, in files
    unlinked as they are made (their space is freed when the call ends, however it
    ends, or the process dies). Created (mode 0700) at start, where leftovers of a
    crash are removed; shared safely by the workers of one ``serve``. Unset:
    ``imagegate-spool-<uid>`` in the system's temporary directory (``TMPDIR``, else
    ``/tmp``): writable with a read-only root file system when ``/tmp`` is a volume."""
    first_message_timeout_s: float = Field(default=5.0, gt=0)
    """An upload (edit, variation) must send its first message, the parameters,
    within this many seconds of its start, else it ends with DEADLINE_EXCEEDED
    (ErrorInfo ``FIRST_MESSAGE_TIMEOUT``). It holds its caller's concurrency slot
    meanwhile, so this bounds how long a caller can hold slots with nothing."""
    upload_idle_timeout_s: float = Field(default=30.0, gt=0)
    """An upload that sends no message for this many seconds mid-upload ends with
    DEADLINE_EXCEEDED (ErrorInfo ``UPLOAD_STALLED``); the call's deadline bounds the
    whole upload as well."""
    rejected_upload_read_s: float = Field(default=5.0, ge=0)
    """When the gateway refuses an upload after its go-ahead (a file of the wrong
    type, say), it first reads and discards what the caller still sends of the bytes
    it declared, for at most this many seconds, so that the caller has finished
    writing when the status arrives (gRPC's asyncio Python client loses a status
    that arrives during its writes: grpc/grpc#36066). 0: answer at once."""
    max_send_message_bytes: int = Field(default=4 * MIB, ge=4 * MIB)
    """Largest unary result; bigger ones are RESOURCE_EXHAUSTED naming the stream RPC.
    The default is gRPC's default receive limit, so that a caller who kept it gets
    that helpful message rather than its library's generic "larger than max"; raise
    both together for callers that raised their own limit."""
    max_receive_message_bytes: int = Field(default=4 * MIB + 64 * 1024, ge=1 * MIB)
    """Largest request message (an upload chunk is at most 1 MiB plus framing)."""
    receive_window_bytes: int = Field(default=256 * 1024, ge=0)
    """HTTP/2 receive window of each call: how far an upload may run ahead of the
    gateway's reading, so it bounds the memory an upload holds in gRPC's buffers.
    An upload's throughput is at most this window per round trip: raise it for
    callers on high-latency links. 0 lets gRPC grow windows by BDP probing, which
    held 2-5 MiB per large upload on loopback (see the README's performance notes)."""
    result_chunk_bytes: int = Field(default=1 * MIB, ge=1024, le=1 * MIB)
    """Slice size of images on the streaming RPCs (the contract promises <= 1 MiB)."""
