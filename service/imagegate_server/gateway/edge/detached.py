"""Work that may outlive its caller: a call with a request id keeps running when its
caller leaves (:mod:`.once`); one without is cancelled, as before.

The work runs in a task of its own that the caller's handler waits for (a unary
call) or reads from (a stream call). ``holder.keep_running`` says which: set once
the call's request id is claimed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Holder:
    """Whether the work must outlive its caller (set once the call is kept)."""

    keep_running: bool = False


class Detached(Generic[T]):
    """Work that may outlive its caller: run in a task; the caller waits for it. A
    caller that leaves cancels it, unless ``holder.keep_running`` says otherwise."""

    def __init__(self, work: Callable[[Holder], Awaitable[T]]) -> None:
        self.holder = Holder()
        self._task = asyncio.ensure_future(work(self.holder))

    async def result(self) -> T:
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self.holder.keep_running:
                self._task.cancel()
            else:
                self._task.add_done_callback(_quietly)
            raise


def _quietly(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the task's own log line said what happened


async def detached_items(
    work: Callable[[Holder], AsyncIterator[T]],
) -> AsyncGenerator[T]:
    """The items of ``work`` relayed from a task of their own, which a caller that
    leaves cancels unless ``holder.keep_running`` says otherwise (then the rest of
    the items are read and dropped, so that the work ends as it would)."""
    holder = Holder()
    queue: asyncio.Queue[tuple[bool, object]] = asyncio.Queue()
    listening = True

    async def pump() -> None:
        try:
            async for item in work(holder):
                if listening:
                    queue.put_nowait((True, item))
        except BaseException as error:
            queue.put_nowait((False, error))
            raise
        queue.put_nowait((False, None))

    task = asyncio.ensure_future(pump())
    try:
        while True:
            ok, item = await queue.get()
            if not ok:
                if isinstance(item, BaseException):
                    raise item
                return
            yield item  # type: ignore[misc]
    finally:
        listening = False
        if not task.done():
            if holder.keep_running:
                task.add_done_callback(_quietly)
            else:
                task.cancel()
        else:
            _quietly(task)
