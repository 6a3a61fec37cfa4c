"""When a failed upstream attempt may be tried again, and after how long.

OpenAI has no idempotency key: a request that reached the model is billed even if
its answer is lost. So only failures that prove nothing was generated are retried:
a connection that was never established, and 429 (refused before generating),
except ``insufficient_quota``, which no wait cures. Read timeouts and 5xx after the
body was sent go back to the caller, unless OpenAI's ``x-should-retry`` header says
otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    backoff_s: float
    backoff_max_s: float

    def backoff(self, retry: int) -> float:
        """Full-jitter exponential backoff for the ``retry``-th retry (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1))
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not cryptography)


def retry_after_s(headers: httpx.Headers) -> float | None:
    """OpenAI's ``retry-after-ms`` (preferred) or ``retry-after`` seconds, if given."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            continue  # an HTTP date: rare from OpenAI; fall back to our own backoff
        if value >= 0:
            return value
    return None


def is_retryable_response(response: httpx.Response, error_code: str | None) -> bool:
    # OpenAI's own verdict wins: "true" vouches that the attempt generated (and
    # billed) nothing, "false" that waiting will not help. The official SDKs obey it.
    should_retry = response.headers.get("x-should-retry")
    if should_retry == "false":
        return False
    if should_retry == "true":
        return True
    return response.status_code == 429 and error_code != "insufficient_quota"
