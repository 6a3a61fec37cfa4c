"""The fixed mmap threshold returns a large answer's memory to the OS, in a real process.

The probe frees one 24 MiB buffer (a large response), then holds and frees ten
2.4 MiB ones (its images), and reports its RSS. With glibc's dynamic threshold the
first free raises the threshold, the images come from the heap, and the heap keeps
them after they are freed; with the threshold fixed, their memory goes back.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from imagegate_server.settings import Settings

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"),
    reason="glibc's malloc only",
)

_PROBE = """
import sys
from imagegate_server.allocator import fix_mmap_threshold

def rss_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) // 1024

fixed = fix_mmap_threshold(int(sys.argv[1]))
before = rss_mib()
response = b"r" * (24 << 20)
del response
images = [b"i" * (2400 << 10) for _ in range(10)]
holding = rss_mib()
del images
print(fixed, before, holding, rss_mib())
"""


def _probe(threshold_bytes: int) -> tuple[bool, int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(threshold_bytes)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    return out[0] == "True", int(out[1]), int(out[2]), int(out[3])


def test_with_the_default_threshold_freed_images_leave_the_process() -> None:
    fixed, before, holding, after = _probe(Settings().malloc_mmap_threshold_bytes)
    assert fixed
    assert holding >= before + 20  # the probe did hold ~23 MiB of images
    assert after <= before + 4


def test_glibcs_dynamic_threshold_keeps_them() -> None:
    # What the setting is for: 0 leaves glibc's default, and the heap keeps the images.
    fixed, before, holding, after = _probe(0)
    assert not fixed
    assert after >= holding - 4 > before + 16
