"""Callers' connections, bounded: how many one process holds (within its open-file
limit), per peer address, per connection (calls), and for how long without a call.

gRPC core enforces what it can as it accepts (:mod:`.limits`); :class:`ConnectionGuard`
adds the per-address cap and the first-call deadline (:mod:`.guard`), reading the
server's connections from gRPC core (:mod:`.channelz`) and closing them through the
kernel (:mod:`.sockets`).
"""

from imagegate_server.gateway.connections.guard import ConnectionGuard, ConnectionGuards
from imagegate_server.gateway.connections.limits import (
    ConnectionLimits,
    caller_limits,
    health_limits,
    raise_open_files_limit,
)

__all__ = [
    "ConnectionGuard",
    "ConnectionGuards",
    "ConnectionLimits",
    "caller_limits",
    "health_limits",
    "raise_open_files_limit",
]
