"""Fault injection: the ``x-emulator-fault`` header syntax and its per-key counters.

Syntax: comma-separated items, each ``NAME[;PARAM=VALUE]...``::

    429;retry-after=2          429 rate_limit_exceeded with retry-after (seconds)
    429;retry-after-ms=1500    ... with retry-after-ms
    quota                      429 insufficient_quota (must not be retried)
    500 | 502 | 503            server_error
    400                        invalid_value (invalid_request_error)
    401 | 403 | 404            invalid_api_key / permission_denied / model_not_found
    413 | 422                  request_too_large / invalid_value (invalid_request_error)
    moderation                 400 image_generation_user_error, code moderation_blocked
    503;x-should-retry=true    any error status with OpenAI's x-should-retry header
                               (true or false)
    503;early=true             any error status, answered before the request body is
                               read (a proxy refusing an upload it never looked at)
    400;code-len=5000;param-len=5000
                               any error (status, quota, moderation, stream-error,
                               stream-moderation) with its code / param stretched to
                               that many characters (at most 1 MiB each)
    stream-error;after=1       a streamed answer sends 1 event, then an SSE ``error``
                               event (server_error) and ends
    stream-moderation;after=0  ... an ``error`` event with code moderation_blocked
    reset;after=64             send the first 64 bytes of the response, then a TCP RST
    delay;ms=500               wait before the first byte (before anything else happens)
    slow;bytes=1024;ms=100     trickle the body: 1024 bytes every 100 ms
    latency;ms=10000;jitter-ms=110000   simulated generation time for this request

Any item also takes ``first=K`` (and optionally ``key=NAME``): it then applies only to
the first K requests carrying the same key (default: the item's own text), so a test
can make two attempts fail and check that the third, retried one succeeds.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from imagegate_server.emulator.config import LatencyModel
from imagegate_server.emulator.errors import (
    MAX_FIELD_CHARS,
    ApiError,
    azure_body,
    for_status,
    insufficient_quota,
    moderation_blocked,
    with_long_fields,
)

FAULT_HEADER = "x-emulator-fault"
_STATUS_CODES = frozenset({400, 401, 403, 404, 413, 422, 429, 500, 502, 503})
_STREAM_FAULTS = ("stream-error", "stream-moderation")
# Parameters whose value is a word, not a number.
_WORD_PARAMS = {"x-should-retry": ("true", "false"), "early": ("true", "false")}
# Parameters of every item that sends an OpenAI error: how long its code and param are.
_LENGTH_PARAMS = ("code-len", "param-len")


class FaultSyntaxError(ValueError):
    """The fault text is not in the documented syntax."""


@dataclass(frozen=True)
class SlowBody:
    chunk_bytes: int
    interval_s: float


@dataclass
class FaultPlan:
    """What to do to one request, after ``first=K`` counters were applied."""

    error: ApiError | None = None
    reset_after_bytes: int | None = None
    delay_s: float = 0.0
    slow: SlowBody | None = None
    latency: LatencyModel | None = None
    stream_error: ApiError | None = None
    """Sent as an SSE ``error`` event after ``stream_error_after`` events."""
    stream_error_after: int = 0
    early: bool = False
    """``error`` is sent before the request's body is read."""
    applied: list[str] = field(default_factory=list)

    def stream_error_event(
        self, events_sent: int, *, azure: bool = False
    ) -> dict[str, object] | None:
        """The ``error`` event a streamed answer sends now instead of its next event."""
        if self.stream_error is None or events_sent < self.stream_error_after:
            return None
        body = azure_body(self.stream_error) if azure else self.stream_error.body()
        return {"type": "error", "error": body["error"]}


@dataclass(frozen=True)
class _Item:
    text: str
    name: str
    params: dict[str, str]


def _parse(text: str) -> list[_Item]:
    items = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        name, *pairs = (part.strip() for part in raw.split(";"))
        params = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise FaultSyntaxError(f"expected PARAM=VALUE, got {pair[:40]!r}")
            params[key.strip().lower()] = value.strip()
        items.append(_Item(raw, name.lower(), params))
    return items


def _is_status(name: str) -> bool:
    # ASCII digits only: str.isdigit() is also true for superscripts, which int() refuses.
    return name.isascii() and name.isdigit()


def _number(item: _Item, key: str, default: float | None = None) -> float:
    value = item.params.get(key)
    if value is None:
        if default is None:
            raise FaultSyntaxError(f"{item.name!r} needs {key}=")
        return default
    try:
        number = float(value)
    except ValueError:
        raise FaultSyntaxError(f"{key}= must be a number, got {value[:20]!r}") from None
    if not 0 <= number < 1e9:
        raise FaultSyntaxError(f"{key}= out of range")
    return number


class FaultInjector:
    """Turns fault text into a :class:`FaultPlan`, counting ``first=K`` per key."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    @staticmethod
    def check(text: str) -> None:
        """Raise :class:`FaultSyntaxError` unless ``text`` is valid (counts nothing)."""
        for item in _parse(text):
            FaultInjector._check(item)

    def plan(self, text: str) -> FaultPlan:
        """Raises :class:`FaultSyntaxError` for text outside the documented syntax."""
        items = _parse(text)
        for item in items:
            self._check(item)
        plan = FaultPlan()
        for item in items:
            if "first" in item.params:
                key = item.params.get("key", item.text)
                limit = int(_number(item, "first"))
                with self._lock:
                    self._seen[key] += 1
                    if self._seen[key] > limit:
                        continue
            self._apply(item, plan)
            plan.applied.append(item.text)
        return plan

    @staticmethod
    def _check(item: _Item) -> None:
        known = {"first", "key"} | {
            "429": {"retry-after", "retry-after-ms"},
            "reset": {"after"},
            "stream-error": {"after"},
            "stream-moderation": {"after"},
            "delay": {"ms"},
            "slow": {"bytes", "ms"},
            "latency": {"ms", "jitter-ms"},
        }.get(item.name, set())
        if _is_status(item.name):
            known |= set(_WORD_PARAMS)
        if _is_status(item.name) or item.name in ("quota", "moderation", *_STREAM_FAULTS):
            known |= set(_LENGTH_PARAMS)
        unknown = set(item.params) - known
        if unknown:
            raise FaultSyntaxError(f"unknown parameter {sorted(unknown)[0]!r} for {item.name!r}")
        if _is_status(item.name):
            if int(item.name) not in _STATUS_CODES:
                raise FaultSyntaxError(f"unsupported status {item.name}")
        elif item.name not in (
            "quota",
            "moderation",
            "reset",
            "delay",
            "slow",
            "latency",
            *_STREAM_FAULTS,
        ):
            raise FaultSyntaxError(f"unknown fault {item.name[:40]!r}")
        if "first" in item.params:
            _number(item, "first")
        for key in set(item.params) - {"first", "key"}:
            if key in _WORD_PARAMS:
                if item.params[key].lower() not in _WORD_PARAMS[key]:
                    raise FaultSyntaxError(f"{key}= must be one of {', '.join(_WORD_PARAMS[key])}")
            elif key in _LENGTH_PARAMS:
                if _number(item, key) > MAX_FIELD_CHARS:
                    raise FaultSyntaxError(f"{key}= must be at most {MAX_FIELD_CHARS}")
            else:
                _number(item, key)

    @staticmethod
    def _apply(item: _Item, plan: FaultPlan) -> None:
        name = item.name
        if _is_status(name) or name in ("quota", "moderation"):
            if plan.error is not None:  # the first error wins
                return
            if name == "quota":
                plan.error = insufficient_quota()
            elif name == "moderation":
                plan.error = moderation_blocked()
            else:
                plan.error = for_status(int(name))
                plan.early = item.params.get("early", "").lower() == "true"
                if "x-should-retry" in item.params:
                    plan.error.headers["x-should-retry"] = item.params["x-should-retry"].lower()
                if "retry-after" in item.params:
                    plan.error.headers["retry-after"] = item.params["retry-after"]
                if "retry-after-ms" in item.params:
                    plan.error.headers["retry-after-ms"] = item.params["retry-after-ms"]
            plan.error = _lengthened(item, plan.error)
        elif name in _STREAM_FAULTS:
            plan.stream_error = _lengthened(
                item, moderation_blocked() if name == "stream-moderation" else for_status(500)
            )
            plan.stream_error_after = int(_number(item, "after", 0))
        elif name == "reset":
            plan.reset_after_bytes = int(_number(item, "after", 64))
        elif name == "delay":
            plan.delay_s += _number(item, "ms") / 1000
        elif name == "slow":
            plan.slow = SlowBody(
                max(1, int(_number(item, "bytes", 1024))), _number(item, "ms", 100) / 1000
            )
        elif name == "latency":
            plan.latency = LatencyModel(
                _number(item, "ms", 0) / 1000, _number(item, "jitter-ms", 0) / 1000
            )


def _lengthened(item: _Item, error: ApiError) -> ApiError:
    """``error`` with the code and param lengths the item asks for (if any)."""
    lengths = [int(_number(item, key)) if key in item.params else None for key in _LENGTH_PARAMS]
    return with_long_fields(error, *lengths)
