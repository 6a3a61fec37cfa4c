"""Settings of the emulator, as small value classes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LatencyModel:
    """Simulated generation time: ``fixed_s`` plus a uniform ``[0, jitter_s)`` draw.

    Real GPT image generations take 10-120 s; ``LatencyModel(10, 110)`` reproduces that
    spread, and ``LatencyModel(10)`` makes every request take 10 s (capacity tests).
    """

    fixed_s: float = 0.0
    jitter_s: float = 0.0

    def sample(self, rng: random.Random) -> float:
        return self.fixed_s + (rng.random() * self.jitter_s if self.jitter_s > 0 else 0.0)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. Every field has an offline-friendly default."""

    api_key: str | None = None
    """When set, requests must carry ``Authorization: Bearer <api_key>``; when None, any
    bearer token is accepted but one must still be present (as with OpenAI)."""
    latency: LatencyModel = field(default_factory=LatencyModel)
    """Applied to every images request unless its fault header sets ``latency``."""
    default_faults: str = ""
    """Faults (``x-emulator-fault`` syntax) for requests that carry no fault header."""
    cached_renders: bool = False
    """Render one template per (model, size, format, background, compression) and only
    stamp each image's identity into it: for load tests, where rendering must not be
    the bottleneck. Images then show no prompt text."""
    real_sizes: bool = False
    """Make PNG, JPEG and WebP images photographic-like and as large, encoded, as
    OpenAI's for their size, quality, format and compression (``real_sizes.py`` has the
    figures), so benchmarks pay real transfer and decoding costs. Rendering then costs
    ~0.1-0.5 s per image: combine with ``cached_renders`` for load tests."""
    public_base_url: str | None = None
    """Origin used in ``url`` responses (e.g. ``http://emulator:8080``); by default the
    origin the request was addressed to."""
    url_ttl_s: float = 3600.0
    """How long ``response_format=url`` links stay valid (OpenAI: 60 minutes)."""
    max_file_bytes: int = 64 * 1024 * 1024
    """Bytes kept per uploaded file; bigger files are still measured (to answer 400
    image_too_large like OpenAI) but not stored."""
    render_threads: int = 0
    """Threads rendering images; 0 means one per CPU."""
    extra_models: frozenset[str] = frozenset()
    """Models served beyond the model table, judged like its most permissive GPT image
    model: one OpenAI has shipped that the table does not know yet, or a test's stand-in
    for it. Any other model is refused as OpenAI refuses it (404 ``model_not_found``),
    so a misspelt model name fails offline too."""
