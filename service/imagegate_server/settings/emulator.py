"""Settings of the embedded emulator, the upstream when no key is configured."""

from __future__ import annotations

from pydantic import BaseModel


class EmulatorSettings(BaseModel):
    """What the emulator's images look like (for load tests and benchmarks)."""

    emulator_cache_renders: bool = False
    """Emulator mode: stamp identities into cached renders (for load tests, where
    rendering must not be the bottleneck); off, images show their prompt."""
    emulator_real_sizes: bool = False
    """Emulator mode: photographic-like PNG/JPEG/WebP images as large, encoded, as
    OpenAI's (megabytes; for benchmarks of transfer and decoding costs). Renders take
    ~0.1-1 s each: combine with ``emulator_cache_renders`` for load tests."""
