"""A misbehaving OpenAI-compatible upstream: what a broken or hostile server can send
and the emulator never should (gzip bombs, bodies of hundreds of MB, error bodies that
never end, absurd usage, ``{}``, 300 MB streamed "images", 5,000-character error
fields).

A raw asyncio HTTP/1.1 server on 127.0.0.1:0, so that every byte is the test's choice:
each request gets the next scripted :data:`Reply` (the last one repeats). Large bodies
are generated as they are written, never held, and every writer stops at a bounded
size or count, or when the gateway closes the connection; :attr:`BadUpstream.sent`
says how many body bytes each reply managed to write, so a test can tell a body the
gateway read from one it refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

from support.images import png

KEY = "sk-bad-upstream-test-key"
MIB = 1024 * 1024
CHUNK = 1 * MIB
SSE_HEADER = ("content-type", "text/event-stream")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Sent:
    """What one reply wrote of its body, and whether it got to the end."""

    body_bytes: int = 0
    finished: bool = False


# Writes the answer to one request (status line, headers, body) and records in Sent.
Reply = Callable[[asyncio.StreamWriter, Sent], Awaitable[None]]


@dataclass
class BadUpstream:
    """``async with BadUpstream() as bad: bad.script(reply, ...)``; ``bad.base_url``."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in order, then the last one again."""
        self.replies = list(replies)

    async def __aenter__(self) -> BadUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            for _ in range(1000):  # keep-alive requests on this connection, bounded
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
                sent = Sent()
                self.sent.append(sent)
                try:
                    await reply(writer, sent)
                except (ConnectionError, asyncio.IncompleteReadError):
                    return  # the gateway closed the connection: what it refused
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()
            self._tasks.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        for _ in range(1_000_000):  # chunks of one request, bounded
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                break
        return Request(method, path, headers, bytes(body))
    length = int(headers.get("content-length", "0"))
    return Request(method, path, headers, await reader.readexactly(length))


# -- replies ------------------------------------------------------------------------------


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reply(
    status: int,
    parts: Callable[[], Iterable[bytes]],
    *headers: tuple[str, str],
    length: int | None = None,
    chunked: bool = False,
    pause_s: float = 0.0,
) -> Reply:
    """``status`` with ``headers`` and the body ``parts()`` makes, written part by part
    (``length``: the Content-Length to declare; ``chunked``: chunked framing, else the
    body ends when the connection closes, unless a length was declared)."""

    async def write(writer: asyncio.StreamWriter, sent: Sent) -> None:
        framing = [("content-length", str(length))] if length is not None else []
        if chunked:
            framing = [("transfer-encoding", "chunked")]
        elif length is None:
            framing = [("connection", "close")]
        writer.write(_head(status, [*headers, *framing]))
        for part in parts():
            writer.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            await writer.drain()
            sent.body_bytes += len(part)
            if pause_s:
                await asyncio.sleep(pause_s)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        sent.finished = True
        if length is None and not chunked:
            writer.close()

    return write


def json_reply(document: object, status: int = 200, *headers: tuple[str, str]) -> Reply:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return reply(status, lambda: [body], ("content-type", "application/json"), *headers,
                 length=len(body))  # fmt: skip


def answer(usage: object = None, image: bytes | None = None, **extra: object) -> dict[str, object]:
    """An ImagesResponse with one image (a small real PNG unless ``image``) and ``usage``
    (left out when None)."""
    data = {"b64_json": base64.b64encode(png() if image is None else image).decode()}
    document: dict[str, object] = {"created": 1_700_000_000, "data": [data], **extra}
    if usage is not None:
        document["usage"] = usage
    return document


def usage(input_tokens: object = 20, output_tokens: object = 4160) -> dict[str, object]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": 0,
        "input_tokens_details": {"text_tokens": 20, "image_tokens": 0},
    }


def filler(prefix: bytes, total: int, suffix: bytes = b"", fill: bytes = b"A") -> Iterator[bytes]:
    """``prefix``, then ``fill`` repeated to ``total`` bytes in all, then ``suffix``, in
    parts of :data:`CHUNK`: a body of any size that is never held whole. ``A`` is valid
    base64 (of zero bytes), so a b64_json value of them decodes to zeros."""
    yield prefix
    left = total - len(prefix) - len(suffix)
    block = fill * CHUNK
    while left > 0:
        yield block[: min(left, CHUNK)]
        left -= CHUNK
    yield suffix


def huge_answer(total: int) -> Callable[[], Iterator[bytes]]:
    """An ImagesResponse of ``total`` bytes whose one image is zeros."""
    return lambda: filler(b'{"created": 1, "data": [{"b64_json": "', total, b'"}]}')


def huge_error(total: int) -> Callable[[], Iterator[bytes]]:
    """An error document of ``total`` bytes (its message is most of it)."""
    return lambda: filler(b'{"error": {"code": "server_error", "message": "', total, b'"}}', b"x")


Body = Callable[[], Iterator[bytes]]


def huge_event(total: int, kind: str = "image_generation.completed") -> Body:
    """One SSE event of ``total`` bytes whose ``b64_json`` is zeros."""
    head = f'event: {kind}\ndata: {{"type": "{kind}", "b64_json": "'.encode()
    return lambda: filler(head, total, b'"}\n\n')


def events(*documents: dict[str, object]) -> Callable[[], Iterator[bytes]]:
    """SSE events, one per document, named by its ``type``."""
    return lambda: iter(
        f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n".encode() for doc in documents
    )


@functools.cache
def gzipped(body: str, total: int) -> tuple[bytes, ...]:
    """:func:`huge_answer` (``body="answer"``) or :func:`huge_error` (``"error"``) of
    ``total`` bytes, gzip-compressed, made once per size: 400 MB of one repeated byte
    compress to ~400 KB."""
    parts = {"answer": huge_answer, "error": huge_error}[body](total)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(part) for part in parts()]
    out.append(packer.flush())
    return tuple(chunk for chunk in out if chunk)


def slow(part: bytes, count: int) -> Callable[[], Iterator[bytes]]:
    """``part`` ``count`` times (with ``reply(pause_s=...)``: a body that trickles)."""
    return lambda: iter([part] * count)
