"""When a failed attempt may be retried, and after how long (OpenAI's headers)."""

from __future__ import annotations

import httpx
import pytest

from imagegate_server.upstream.retry import RetryPolicy, is_retryable_response, retry_after_s


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        # retry-after-ms is the more precise of the two and wins.
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),
        # An HTTP date (rare from OpenAI) falls back to our own backoff ...
        ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
        # ... and so does a malformed or negative value, without hiding a valid one.
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": ""}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(httpx.Headers(headers)) == expected


@pytest.mark.parametrize(
    ("status", "code", "headers", "retryable"),
    [
        (429, "rate_limit_exceeded", {}, True),
        (429, None, {}, True),
        # No wait cures an exhausted quota.
        (429, "insufficient_quota", {}, False),
        # A 5xx may have generated (and billed): not retried ...
        (500, None, {}, False),
        (503, None, {}, False),
        (400, "invalid_value", {}, False),
        # ... unless OpenAI vouches that it generated nothing, and its "false" wins too.
        (503, None, {"x-should-retry": "true"}, True),
        (500, None, {"x-should-retry": "true"}, True),
        (429, "rate_limit_exceeded", {"x-should-retry": "false"}, False),
        (429, "insufficient_quota", {"x-should-retry": "true"}, True),
        # Only exact values count.
        (503, None, {"x-should-retry": "yes"}, False),
    ],
)
def test_retryable_responses(
    status: int, code: str | None, headers: dict[str, str], retryable: bool
) -> None:
    response = httpx.Response(status, headers=headers)
    assert is_retryable_response(response, code) is retryable


def test_backoff_is_jittered_below_a_doubling_capped_ceiling() -> None:
    policy = RetryPolicy(max_retries=5, backoff_s=0.5, backoff_max_s=3.0)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2  # jittered over the range, not pinned at 0
