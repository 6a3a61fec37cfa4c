"""Work that must run to its end even when whoever awaits it is cancelled (a caller
that went away): a file write a thread is doing, a store step whose outcome says
what to clean up."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def to_its_end(work: asyncio.Future[T]) -> T:
    """``work``'s result. Cancelled meanwhile, the caller waits for ``work`` to end
    before the cancellation goes on, so that it can see how ``work`` ended (done,
    then ``cancelled()`` or ``exception()``) before it cleans up."""
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise
