"""What went wrong with a Redis command, in words an operator can act on.

redis-py raises one exception per cause, often wrapped (a Cluster that cannot be
initialised wraps the WRONGPASS of each seed; a failed connect wraps the OS's
error). :func:`classify` walks the chain and says whether Redis is
**unreachable** (no connection, no answer in time) or **refusing** (it answered,
with an error that is not the limiter's business: MOVED not followed, NOPERM,
WRONGPASS/NOAUTH, OOM, READONLY, CLUSTERDOWN, a script error). The reason never
holds a URL, a password or a key's value: only Redis's error code, a fixed
explanation, and for NOPERM and script errors Redis's own (bounded) message.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from typing import Literal

from redis import exceptions as rx

State = Literal["refusing", "unreachable"]
# What a Redis command can raise besides our own programming errors.
ERRORS: tuple[type[BaseException], ...] = (
    rx.RedisError,
    rx.RedisClusterException,
    OSError,
    TimeoutError,
)


class StoreFailure(Exception):
    """A Redis command failed; :attr:`reason` is safe to log."""

    def __init__(self, state: State, code: str, reason: str) -> None:
        super().__init__(reason)
        self.state: State = state
        self.code = code
        """A short stable name of the cause (``WRONGPASS``, ``TIMEOUT``...)."""
        self.reason = reason

    @property
    def refusing(self) -> bool:
        return self.state == "refusing"


_REFUSALS: dict[str, str] = {
    "WRONGPASS": "Redis refused the username or password (WRONGPASS): check "
    "IMAGEGATE_REDIS_USERNAME and IMAGEGATE_REDIS_PASSWORD (or the URL's)",
    "NOAUTH": "Redis requires a password (NOAUTH) and none was given: set IMAGEGATE_REDIS_PASSWORD",
    "OOM": "Redis is at its maxmemory and refuses writes (OOM)",
    "READONLY": "the server is a read-only replica (READONLY): point the URL at the "
    "primary, or use redis+sentinel:// or redis+cluster://",
    "CLUSTERDOWN": "the Redis Cluster is down (CLUSTERDOWN: not every hash slot is served)",
    "MASTERDOWN": "the replica lost its primary (MASTERDOWN)",
    "LOADING": "Redis is loading its data set into memory (LOADING)",
    "BUSY": "Redis is busy running a long script (BUSY)",
    "MISCONF": "Redis cannot save to disk and refuses writes until it can (MISCONF)",
    "NOREPLICAS": "the primary has fewer replicas in sync than min-replicas-to-write "
    "asks, and refuses writes (NOREPLICAS)",
    "TRYAGAIN": "the Redis Cluster is moving these keys between nodes (TRYAGAIN)",
    "MOVED": "Redis answered MOVED: IMAGEGATE_REDIS_URL names one node of a Redis Cluster; "
    "use redis+cluster:// (rediss+cluster:// with TLS) with that node as a seed",
    "REDIRECTS": "the Redis Cluster kept redirecting the command (MOVED/ASK) past redis-py's limit",
    "NOT_CLUSTER": "IMAGEGATE_REDIS_URL says redis+cluster:// but the server is not in "
    "cluster mode: use redis:// (or rediss://) for a single server",
    "CROSSSLOT": "one command named keys in different hash slots (CROSSSLOT): a bug, "
    "please report it",
    "SENTINEL_AUTH": "the sentinels refused the username or password: check "
    "IMAGEGATE_REDIS_SENTINEL_USERNAME and IMAGEGATE_REDIS_SENTINEL_PASSWORD",
    "TLS": "the TLS handshake failed: check IMAGEGATE_REDIS_TLS_CA_FILE (the servers' CA) "
    "and IMAGEGATE_REDIS_TLS_CERT_FILE (ours, if they require one)",
}


def refusal(code: str, detail: str = "") -> StoreFailure:
    reason = _REFUSALS.get(code) or f"Redis answered {code}"
    return StoreFailure("refusing", code, f"{reason} ({detail})" if detail else reason)


def unreachable(code: str, reason: str) -> StoreFailure:
    return StoreFailure("unreachable", code, reason)


def classify(
    error: BaseException, *, timeout_s: float, cluster: bool = False, tls: bool = False
) -> StoreFailure:
    """What ``error`` (one of :data:`ERRORS`) means for the store."""
    chain = list(_chain(error))
    for cause in chain:
        found = _answered(cause, cluster)
        if found is not None:
            return found
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            # "certificate verify failed"'s detail, or "tlsv13 alert certificate
            # required" without OpenSSL's code and source line around it.
            plain = re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(cause))
            what = getattr(cause, "verify_message", None) or plain or type(cause).__name__
            return refusal("TLS", str(what)[:120])
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return unreachable("REFUSED", "connection refused")
        if isinstance(cause, socket.gaierror):
            return unreachable("DNS", "the host name does not resolve")
        if isinstance(cause, rx.MaxConnectionsError):
            return unreachable("POOL", "no free connection (IMAGEGATE_REDIS_MAX_CONNECTIONS)")
    if any(isinstance(cause, TimeoutError | rx.TimeoutError) for cause in chain):
        return unreachable("TIMEOUT", f"no answer within {timeout_s:g} s")
    first = chain[0]
    if type(first).__name__ == "MasterNotFoundError":
        return unreachable("NO_PRIMARY", "no sentinel names a primary of that name that is up")
    if type(first).__name__ == "SlaveNotFoundError":
        return unreachable("NO_PRIMARY", "the sentinels name no server to connect to")
    if isinstance(first, rx.RedisClusterException):
        return unreachable("CLUSTER", "no node of the Redis Cluster could be used")
    if isinstance(first, rx.ConnectionError | OSError):
        reset = any(isinstance(cause, ConnectionResetError) for cause in chain)
        reason = "the connection was reset" if reset else "the connection failed or was closed"
        if tls:
            # A server that wants a client certificate and gets none closes the
            # connection after the handshake; what arrives first, its alert or the
            # reset, is a race.
            reason += (
                " (with TLS: does the server require a client certificate? "
                "IMAGEGATE_REDIS_TLS_CERT_FILE)"
            )
        return unreachable("CONNECTION", reason)
    return unreachable("ERROR", type(first).__name__)


def _answered(cause: BaseException, cluster: bool) -> StoreFailure | None:
    """The refusal when ``cause`` is an answer of Redis."""
    if type(cause).__name__ == "MasterNotFoundError" and "AuthenticationError" in str(cause):
        # redis-py folds the sentinels' errors into the message (their class names).
        return refusal("SENTINEL_AUTH")
    if isinstance(cause, rx.AuthenticationError):
        code = getattr(cause, "status_code", None) or "WRONGPASS"
        if code == "ERR":
            return refusal("WRONGPASS", "a password was given but Redis has none set")
        return refusal(code if code in _REFUSALS else "WRONGPASS")
    if isinstance(cause, rx.AskError):  # MovedError too
        return refusal("REDIRECTS" if cluster else "MOVED")
    if isinstance(cause, rx.ClusterError) and not isinstance(cause, rx.ResponseError):
        return refusal("REDIRECTS")
    if isinstance(cause, rx.RedisClusterException) and "not enabled" in str(cause):
        return refusal("NOT_CLUSTER")
    if isinstance(cause, rx.BusyLoadingError):
        return refusal("LOADING")
    # An error reply carries its code ("ERR max number of clients reached" too).
    if not isinstance(cause, rx.ResponseError) and not getattr(cause, "status_code", None):
        return None
    code = getattr(cause, "status_code", None) or str(cause).partition(" ")[0] or "ERR"
    if isinstance(cause, rx.ClusterDownError):
        code = "MASTERDOWN" if isinstance(cause, rx.MasterDownError) else "CLUSTERDOWN"
    elif isinstance(cause, rx.ClusterCrossSlotError):
        code = "CROSSSLOT"
    elif "cluster support disabled" in str(cause):
        code = "NOT_CLUSTER"
    if code in _REFUSALS:
        return refusal(code)
    # NOPERM, a script error, an unknown command: Redis's own words say which.
    message = " ".join(str(cause).split()).removeprefix(f"{code} ")[:200]
    return StoreFailure("refusing", code[:20], f"Redis answered {code[:20]}: {message}")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo and len(seen) < 20:
        cause = todo.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        todo += [c for c in (cause.__cause__, cause.__context__) if c is not None]
