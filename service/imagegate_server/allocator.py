"""Where a large answer's buffers come from: glibc's malloc, with a fixed mmap threshold.

glibc serves an allocation above its mmap threshold from a mapping of its own and
unmaps it when it is freed, so the memory goes back to the OS at once. By default
the threshold is dynamic: freeing a mapped block raises it to that block's size (up
to 32 MiB). After the first large unary answer, the next one's images, response
and gRPC core's copy then come from the heap, which keeps what is freed (it only
shrinks from its top) and fragments.

Measured by the bench's results scenario (n=10 1536x1024, 2.4 MiB per image; the
phase's exact peak, VmHWM), peak RSS over the answer's base64 size and CPU per call:

- glibc's dynamic threshold: 1.69x;
- fixed at 4 MiB (images stay on the heap): 1.69-1.70x, 84-98 ms unary, ~200 ms streamed;
- fixed at 2 MiB (images mapped too): 1.53x, 104-118 ms unary, 290-360 ms streamed.

(Those CPU figures predate streams read as bytes; at 2 MiB, since: 1.52x, 94-122 ms
unary, 72-98 ms streamed, in two ``bench all`` runs.)

1.5x is the floor of a unary answer (the response and gRPC's copy of it), so 2 MiB
is the default: it costs page faults on every fresh mapping, about a quarter more CPU
for a 10-image unary answer when measured, which is small beside the tens of seconds
such a call waits for OpenAI, while memory bounds how many fit.
Buffers below it (read chunks, small images) stay on the heap, where reuse is free.

A process whose malloc is not glibc's (musl, macOS) has no such threshold to set.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def fix_mmap_threshold(threshold_bytes: int) -> bool:
    """Fix glibc's mmap threshold at ``threshold_bytes`` (0: leave it dynamic); True
    if it was set."""
    if threshold_bytes == 0 or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, threshold_bytes) != 1:
        log.warning("malloc refused the mmap threshold", extra={"bytes": threshold_bytes})
        return False
    return True
