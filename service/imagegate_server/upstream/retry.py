"""When a failed upstream attempt may be tried again, and after how long.

OpenAI has no idempotency key: a request that reached the model is billed even if
its answer is lost. So only failures that prove nothing was generated are retried:
a connection that was never established, and 429 (refused before generating),
except ``insufficient_quota``, which no wait cures. Read timeouts and 5xx after the
body was sent go back to the caller, unless OpenAI's ``x-should-retry`` header says
otherwise. Which failures may move a call to another upstream (failover) is the
same question asked of a different key: :func:`generated_nothing`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

BODY_INCOMPLETE = "imagegate.body_incomplete"
"""Response extension set (True) by the transport when the answer arrived before the
request's body was all sent."""


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


def generated_nothing(response: httpx.Response) -> bool:
    """Whether an error answer proves the upstream generated nothing for the request,
    so that another upstream may be asked: a 429 (refused before generating, whatever
    its code), ``x-should-retry: true``, or a 5xx that arrived before the request's
    body was all sent (a server that never read the whole request cannot have run it).
    """
    if response.status_code == 429 or response.headers.get("x-should-retry") == "true":
        return True
    return response.status_code >= 500 and bool(response.extensions.get(BODY_INCOMPLETE))
