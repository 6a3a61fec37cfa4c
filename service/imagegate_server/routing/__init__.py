"""Routing: which upstream a call goes to (DESIGN.md section 1, between requests and
upstream).

Modules: :mod:`.schema` (the upstreams file's models, and the refusal of keys written
in it), :mod:`.keys` (an upstream's key, from a file, the secrets directory or the
environment), :mod:`.upstreams_file` (loading a version and keeping the file current),
:mod:`.breaker` (a circuit breaker per upstream), :mod:`.candidates` (which upstreams
may take a call, in what order), :mod:`.verdicts` (how a call's ending counts for an
upstream's circuit) and :mod:`.router` (ceilings, failover that never bills twice).
How one upstream is spoken to (OpenAI, Azure, compatible servers) is
:mod:`imagegate_server.upstream`'s business.
"""

from imagegate_server.routing.breaker import BreakerPolicy, CircuitBreaker, State
from imagegate_server.routing.candidates import CEILING_LIMIT
from imagegate_server.routing.router import Route, Router
from imagegate_server.routing.upstreams_file import (
    UpstreamSet,
    UpstreamsFile,
    UpstreamsFileError,
    UpstreamSpec,
    load_upstreams,
    transport,
)

__all__ = [
    "CEILING_LIMIT",
    "BreakerPolicy",
    "CircuitBreaker",
    "Route",
    "Router",
    "State",
    "UpstreamSet",
    "UpstreamSpec",
    "UpstreamsFile",
    "UpstreamsFileError",
    "load_upstreams",
    "transport",
]
