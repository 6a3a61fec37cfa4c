"""An upload's messages as they arrive: its parameters first, then file chunks, each in
time; and, when the gateway refuses an upload mid-way, the rest read and dropped.

Every upload request type has the oneof ``payload {parameters, chunk}``: the
parameters come first and only once.

Time
    The first message must arrive within ``first_message_s`` of the call's start,
    and each later one within ``idle_s`` of the one before; otherwise the call ends
    with DEADLINE_EXCEEDED (:class:`CallerStalled`, ErrorInfo ``FIRST_MESSAGE_TIMEOUT``
    or ``UPLOAD_STALLED``). The call's own deadline bounds the whole upload besides.
A refused upload
    A refusal that comes while the caller is still writing (a file of the wrong type
    shows in its first chunk) is answered only once the caller has sent what it
    declared: :meth:`UploadStream.discard` reads and drops the rest, at most the bytes
    the caller declared and still owes, for at most a few seconds. gRPC's asyncio
    Python client loses a status that arrives during its writes and reports INTERNAL
    instead (grpc/grpc#36066: 8 of 20 JPEGs given to ``imagegate vary`` under load,
    before); an upload that sends more, or more slowly, is answered at the bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import CallerStalled, InvalidRequest

FIRST_MESSAGE_TIMEOUT = "FIRST_MESSAGE_TIMEOUT"
UPLOAD_STALLED = "UPLOAD_STALLED"


class UploadStream:
    """One upload's request messages (already parsed), read under the time bounds."""

    def __init__(
        self,
        messages: AsyncIterator[Message],
        *,
        first_message_s: float,
        idle_s: float,
        on_closed: Callable[[str], None] | None = None,
    ) -> None:
        """``on_closed(reason)`` hears each stream ended early: ``first_message_timeout``
        and ``upload_stalled``, and refused mid-upload, ``refused_drained`` (the caller
        sent the rest first) or ``refused_cut`` (it sent more, or more slowly)."""
        self._messages = messages
        self._first_message_s = first_message_s
        self._idle_s = idle_s
        self._on_closed = on_closed
        self._broken = False
        """Reading failed (a timeout, a malformed message): nothing more can be read."""
        self._ended = False
        """The caller half-closed: everything it sent was read."""
        self.first: Message | None = None
        """The first message, once :meth:`parameters` read it (its other fields, such
        as ``request_id``, belong to the whole upload)."""

    async def parameters(self) -> Message:
        first = await self._next(
            self._first_message_s,
            FIRST_MESSAGE_TIMEOUT,
            f"no parameters message within {self._first_message_s:g} s of the call's start",
        )
        if first is None or first.WhichOneof("payload") != "parameters":
            raise InvalidRequest.one("parameters", "the first message must carry the parameters")
        self.first = first
        parameters: Message = getattr(first, "parameters")  # noqa: B009 (typed per request type)
        return parameters

    async def chunks(self) -> AsyncIterator[params_pb2.FileChunk]:
        """The file chunks after the parameters, until the caller half-closes."""
        while True:
            message = await self._next(
                self._idle_s,
                UPLOAD_STALLED,
                f"the upload sent nothing for {self._idle_s:g} s",
            )
            if message is None:
                self._ended = True
                return
            kind = message.WhichOneof("payload")
            if kind == "parameters":
                raise InvalidRequest.one("parameters", "sent twice; only the first message")
            if kind is None:
                raise InvalidRequest.one("payload", "a message must carry parameters or a chunk")
            chunk: params_pb2.FileChunk = getattr(message, "chunk")  # noqa: B009
            yield chunk

    async def discard(self, max_bytes: int, seconds: float) -> bool:
        """Read and drop file chunks until the caller half-closes: True. False when it
        sends more than ``max_bytes`` of file data, takes longer than ``seconds``, or
        sends anything else (or when the stream cannot be read any more)."""
        if self._ended:
            return True  # refused for what the whole upload showed: nothing left
        if self._broken:
            return False  # a stall or a malformed message: counted where it happened
        drained = seconds > 0 and await self._drop_rest(max_bytes, seconds)
        self._closed("refused_drained" if drained else "refused_cut")
        return drained

    async def _drop_rest(self, max_bytes: int, seconds: float) -> bool:
        dropped = 0
        try:
            async with asyncio.timeout(seconds):
                async for message in self._messages:
                    if message.WhichOneof("payload") != "chunk":
                        return False
                    dropped += len(getattr(message, "chunk").data)  # noqa: B009
                    if dropped > max_bytes:
                        return False
        except (TimeoutError, InvalidRequest):  # late, or a malformed message
            return False
        return True

    async def _next(self, seconds: float, reason: str, message: str) -> Message | None:
        try:
            async with asyncio.timeout(seconds):
                return await anext(self._messages, None)
        except TimeoutError:
            self._broken = True
            self._closed(reason.lower())
            raise CallerStalled(reason, message, seconds) from None
        except BaseException:
            self._broken = True
            raise

    def _closed(self, reason: str) -> None:
        if self._on_closed is not None:
            self._on_closed(reason)
