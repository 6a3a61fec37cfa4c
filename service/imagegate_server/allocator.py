"""Where a large answer's buffers come from: glibc's malloc, with a fixed mmap threshold.

glibc serves an allocation above its mmap threshold from a mapping of its own and
unmaps it when it is freed, so the memory goes back to the OS at once. By default
the threshold is dynamic: freeing a mapped block raises it to that block's size (up
to 32 MiB). After the first large unary answer, the next one's 24 MiB response and
gRPC core's copy of it then come from the heap, which keeps what is freed and
fragments: the gateway's peak RSS for an answer of n=10 1536x1024 images was 1.69x
its base64 size, 1.47-1.52x with a fixed 4 MiB threshold, at the same CPU per call
(the bench's results scenario). Below 4 MiB (an image, a read chunk) buffers stay on
the heap, where reuse costs no page faults: a 128 KiB threshold met the same memory
at twice the CPU of a streamed answer.

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
