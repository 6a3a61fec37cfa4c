"""How an answer's bytes leave: OpenAI's headers, and the request's fault plan applied
to the writing (slow bodies, resets, stream errors).

A :class:`Responder` is made per images request; it stamps every answer, error or
not, with the headers OpenAI sends (``x-request-id``, ``openai-processing-ms``, the six
``x-ratelimit-*``, plus a fault's ``retry-after``/``x-should-retry``), and writes the
body through the plan: ``slow`` trickles it, ``reset`` sends a TCP RST after so many
bytes, ``stream-error`` replaces an event with an SSE ``error`` event.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from typing import Any

from aiohttp import web

from imagegate_server.emulator.answers import sse
from imagegate_server.emulator.errors import ApiError, azure_body
from imagegate_server.emulator.faults import FaultPlan
from imagegate_server.emulator.journal import JournalEntry
from imagegate_server.emulator.state import EmulatorState

# What the emulator claims as its rate limits (headers only; nothing is enforced).
_LIMIT_REQUESTS = 500
_LIMIT_TOKENS = 1_000_000
CLIENT_GONE = 499
"""The status recorded when nothing more can be written (aiohttp writes nothing)."""


class ConnectionAborted(Exception):
    """The injected reset was sent; nothing more can be written."""


def error_response(error: ApiError) -> web.Response:
    """An OpenAI-shaped error for routes without a responder (control, unknown paths)."""
    return web.json_response(error.body(), status=error.status)


class Responder:
    """Sends one images request's answer through its fault plan."""

    def __init__(
        self, request: web.Request, state: EmulatorState, entry: JournalEntry, request_id: str
    ) -> None:
        self.request = request
        self.state = state
        self.entry = entry
        self.request_id = request_id
        self.started = time.monotonic()
        self.plan = FaultPlan()
        """Replaced by the pipeline once the request's faults are known."""
        self.sent = 0
        self.events_sent = 0

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        remaining = max(0, _LIMIT_REQUESTS - self.state.in_flight)
        limited = self.plan.error is not None and self.plan.error.status == 429
        headers = {
            "x-request-id": self.request_id,
            "openai-processing-ms": str(int((time.monotonic() - self.started) * 1000)),
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": str(_LIMIT_REQUESTS),
            "x-ratelimit-limit-tokens": str(_LIMIT_TOKENS),
            "x-ratelimit-remaining-requests": "0" if limited else str(remaining),
            "x-ratelimit-remaining-tokens": "0" if limited else str(_LIMIT_TOKENS),
            "x-ratelimit-reset-requests": "1s" if limited else "120ms",
            "x-ratelimit-reset-tokens": "1s" if limited else "0s",
        }
        headers.update(extra or {})
        return headers

    async def start(
        self,
        status: int,
        content_type: str,
        length: int | None,
        extra: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Send the status line and headers; the body follows through :meth:`write`."""
        response = web.StreamResponse(status=status, headers=self.headers(extra))
        response.content_type = content_type
        if length is not None:
            response.content_length = length
        self.entry.status = status
        await response.prepare(self.request)
        return response

    async def send_json(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> web.StreamResponse:
        body = json.dumps(payload).encode()
        response = await self.start(status, "application/json", len(body), extra)
        await self.write(response, body)
        await response.write_eof()
        return response

    async def send_error(self, error: ApiError) -> web.StreamResponse:
        body = azure_body(error) if self.state.config.azure else error.body()
        try:
            return await self.send_json(error.status, body, error.headers)
        except ConnectionAborted:
            return web.Response(status=CLIENT_GONE)

    async def send_event(self, response: web.StreamResponse, event: dict[str, Any]) -> bool:
        """Send ``event``, or end the stream with the plan's ``error`` event (False)."""
        failure = self.plan.stream_error_event(self.events_sent, azure=self.state.config.azure)
        if failure is not None:
            await self.write(response, sse(failure))
            await response.write_eof()
            return False
        await self.write(response, sse(event))
        self.events_sent += 1
        return True

    async def write(self, response: web.StreamResponse, data: bytes) -> None:
        """Write body bytes, trickled or cut off as the plan says."""
        reset_at = self.plan.reset_after_bytes
        if reset_at is not None and self.sent + len(data) >= reset_at:
            await response.write(data[: max(0, reset_at - self.sent)])
            await self._reset()
            raise ConnectionAborted
        slow = self.plan.slow
        if slow is None:
            await response.write(data)
        else:
            for start in range(0, len(data), slow.chunk_bytes):
                await response.write(data[start : start + slow.chunk_bytes])
                await asyncio.sleep(slow.interval_s)
        self.sent += len(data)

    async def _reset(self) -> None:
        transport = self.request.transport
        if transport is None:
            return
        # Let what was written reach the socket, so the client sees a truncated body.
        for _ in range(100):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        self.state.journal.event(
            self.entry, "connection_reset_sent", f"after {self.plan.reset_after_bytes} bytes"
        )
