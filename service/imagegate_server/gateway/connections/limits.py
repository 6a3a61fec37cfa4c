"""What the gateway's listeners admit, and the open-file budget those limits live in.

Every connection costs a file descriptor, and so does every upstream connection,
Redis connection and upload spool file. The open-file limit is raised to its hard
limit at start, and callers' connections may take at most half of it: when they
reach that, gRPC closes new ones as they arrive, while the other half stays for what
the calls themselves need. Before, 20,000 connections that sent nothing took the
gateway to the limit, and then nothing at all could open a descriptor.

gRPC core enforces the limits it knows itself (:meth:`ConnectionLimits.grpc_options`):
the process-wide cap, the handshake deadline, the idle timeout and the streams per
connection; :mod:`.guard` adds the per-address cap and the first-call deadline.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from imagegate_server.settings import Settings

log = logging.getLogger(__name__)

# Where RLIM_INFINITY stands for "no limit" (not Linux, whose hard limit is finite).
_UNLIMITED_FILES = 1 << 20
# The health port serves kubelet probes: a few short connections, one call each.
HEALTH_MAX_CONNECTIONS = 64
HEALTH_MAX_PER_ADDRESS = 16
HEALTH_MAX_CALLS_PER_CONNECTION = 16


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of one listening port, in one process."""

    max_connections: int
    """Connections held at once, every address together; gRPC closes new ones past it."""
    max_per_address: int
    """Connections one remote address may hold; past it the newest without a call
    in flight are closed."""
    max_calls_per_connection: int
    """Concurrent calls (HTTP/2 streams) on one connection."""
    first_call_timeout_s: float
    """A connection that started no call this long after it opened is closed."""
    idle_timeout_s: float
    """A connection with no call in flight this long is closed (with a GOAWAY)."""

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            # Checked by gRPC core as it accepts: past it the connection is closed at
            # once, so the descriptors it would take stay free.
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            # A peer that ignores this SETTINGS value gets RST_STREAM(REFUSED_STREAM);
            # a gRPC client queues its calls instead.
            ("grpc.max_concurrent_streams", self.max_calls_per_connection),
            # The TLS handshake and the client's HTTP/2 SETTINGS must arrive by then:
            # a connection that sends nothing, or only the preface, is closed.
            ("grpc.server_handshake_timeout_ms", _ms(self.first_call_timeout_s)),
            # Counted from the connection's start as well: gRPC closes a connection
            # that never made a call after this too, if the guard has not already.
            ("grpc.max_connection_idle_ms", _ms(self.idle_timeout_s)),
        ]


def caller_limits(settings: Settings, open_files: int) -> ConnectionLimits:
    """The main port's limits, for a process allowed ``open_files`` descriptors.

    Warns once when the other half cannot hold the pools that draw on it at their
    full size: calls would then fail for want of a descriptor under heavy load."""
    max_connections = max(1, min(settings.max_caller_connections, open_files // 2))
    pools = settings.max_connections + settings.redis_max_connections + HEALTH_MAX_CONNECTIONS
    if pools > open_files - max_connections:
        log.warning(
            "the open-file limit is too low for the upstream pool at its full size: "
            "raise the hard limit (ulimit -Hn) or lower IMAGEGATE_MAX_CONNECTIONS",
            extra={
                "open_files": open_files,
                "max_caller_connections": max_connections,
                "upstream_pool": settings.max_connections,
            },
        )
    return ConnectionLimits(
        max_connections=max_connections,
        max_per_address=settings.max_connections_per_address,
        max_calls_per_connection=settings.max_calls_per_connection,
        first_call_timeout_s=settings.connection_first_call_timeout_s,
        idle_timeout_s=settings.connection_idle_timeout_s,
    )


def health_limits(settings: Settings) -> ConnectionLimits:
    """The health port's: its own small cap, so that a flood of it cannot take the
    descriptors the main port's calls need, nor the other way round."""
    return ConnectionLimits(
        max_connections=HEALTH_MAX_CONNECTIONS,
        max_per_address=HEALTH_MAX_PER_ADDRESS,
        max_calls_per_connection=HEALTH_MAX_CALLS_PER_CONNECTION,
        first_call_timeout_s=settings.connection_first_call_timeout_s,
        idle_timeout_s=settings.connection_idle_timeout_s,
    )


def raise_open_files_limit() -> int:
    """Raise this process's open-file limit (soft) to its hard limit; returns the
    limit now in force. A refusal (a hard limit the kernel caps lower) keeps the old
    one: the caps derived from it still hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning(
                "cannot raise the open-file limit to its hard limit",
                extra={"open_files": soft, "hard_limit": target},
            )
    return _UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
