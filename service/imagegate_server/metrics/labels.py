"""Label values, bounded: every value a metric can carry comes from a fixed set.

A label value that a caller controls (a model name, a client id it claims) would
let any caller create series without end and fill Prometheus; free text (prompts,
request ids, error messages) and secrets must never reach a label at all. So each
label is normalised here from a closed set, with ``other`` for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import grpc

from imagegate_server.errors import AnswerFault
from imagegate_server.models import rules_for

OTHER = "other"
ANONYMOUS = "anonymous"

OPERATIONS = frozenset({"generation", "edit", "variation"})
UPSTREAM_FAILURES = frozenset({"connect_error", "timeout", "reset"})
RETRY_CAUSES = frozenset({"connect", "rate_limited", "should_retry"})
ANSWER_FAULTS = frozenset(fault.value for fault in AnswerFault)
USAGE_ANOMALIES = frozenset({"missing", "invalid", "implausible"})
STREAM_CLOSE_REASONS = frozenset(
    {"first_message_timeout", "upload_stalled", "refused_drained", "refused_cut"}
)
GRPC_CODES = frozenset(code.name for code in grpc.StatusCode)
# Limit names come from the limiter's code, never from a caller; the pattern keeps
# a mistake there from turning into unbounded label values.
_LIMIT_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
_MAX_CLIENT_ID = 128


def model(name: str) -> str:
    """The model's name when the model table knows it, else ``other``."""
    return name if rules_for(name) is not None else OTHER


def operation(name: str) -> str:
    return name if name in OPERATIONS else OTHER


def upstream_status(status: int | str) -> str:
    """An HTTP status as text, or one of :data:`UPSTREAM_FAILURES`."""
    if isinstance(status, int):
        return str(status) if 100 <= status <= 599 else OTHER
    return status if status in UPSTREAM_FAILURES else OTHER


def retry_cause(cause: str) -> str:
    return cause if cause in RETRY_CAUSES else OTHER


def answer_fault(reason: str) -> str:
    return reason if reason in ANSWER_FAULTS else OTHER


def usage_anomaly(kind: str) -> str:
    return kind if kind in USAGE_ANOMALIES else OTHER


def stream_close_reason(reason: str) -> str:
    return reason if reason in STREAM_CLOSE_REASONS else OTHER


def grpc_code(code: grpc.StatusCode | str) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    return code if code in GRPC_CODES else "UNKNOWN"


def limit(name: str) -> str:
    return name if _LIMIT_NAME.fullmatch(name) else OTHER


class ClientLabels:
    """Client ids as labels: only ids of the operator's clients file.

    Until :meth:`known` is given the file's ids, every named client is ``other``:
    an id that did not come from the file could be anything a caller sent.
    """

    def __init__(self) -> None:
        self._known: frozenset[str] = frozenset()

    def known(self, client_ids: Iterable[str]) -> None:
        self._known = frozenset(c for c in client_ids if 0 < len(c) <= _MAX_CLIENT_ID)

    def __call__(self, client_id: str | None) -> str:
        if not client_id:
            return ANONYMOUS
        return client_id if client_id in self._known else OTHER


DEFAULT_UPSTREAM = "default"
"""The one upstream of a gateway without an upstreams file."""
FAILOVER_CAUSES = frozenset({"connect", "rate_limited", "server_error"})


def failover_cause(cause: str) -> str:
    return cause if cause in FAILOVER_CAUSES else OTHER


class UpstreamLabels:
    """Upstream names as labels: ``default`` and the names of the upstreams file."""

    def __init__(self) -> None:
        self._known: frozenset[str] = frozenset({DEFAULT_UPSTREAM})

    def known(self, names: Iterable[str]) -> None:
        self._known = frozenset({DEFAULT_UPSTREAM, *(n for n in names if 0 < len(n) <= 64)})

    def __call__(self, name: str | None) -> str:
        return name if name is not None and name in self._known else OTHER
