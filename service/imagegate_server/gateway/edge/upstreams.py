"""What AdminService.ListUpstreams lists: the upstreams this gateway routes to.

Each upstream as the answering process sees it: its circuit (breakers are per
process), and from the limiter's store (shared like every limit) its headroom
under its own ceilings and its spend today and this month.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from imagegate.v1 import admin_pb2

from imagegate_server.limits import Limiter
from imagegate_server.routing import Route, Router


async def list_upstreams(router: Router, limiter: Limiter) -> admin_pb2.ListUpstreamsResponse:
    response = admin_pb2.ListUpstreamsResponse(
        from_file=router.from_file, limits_store=limiter.backend
    )
    response.as_of.FromDatetime(datetime.now(UTC))
    for route in router.routes:
        response.upstreams.append(await _state(route, router.from_file, limiter))
    return response


async def _state(route: Route, from_file: bool, limiter: Limiter) -> admin_pb2.UpstreamState:
    spec, config = route.spec, route.spec.config
    models = sorted(config.azure.deployments) if config.azure else list(spec.models or ())
    state = admin_pb2.UpstreamState(
        name=route.name,
        kind=config.kind,
        host=urlsplit(config.base_url).netloc.rpartition("@")[2],
        models=models,
        priority=spec.priority,
        weight=spec.weight,
        circuit=route.breaker.state.value if route.breaker is not None else "none",
    )
    if not from_file:
        return state  # one upstream: no ceilings, and its spend is every client's
    status = await limiter.upstream_status(route.name, spec.ceilings())
    for rate in status.rates:
        state.ceilings.add(name=rate.name, per_minute=rate.per_minute, remaining=rate.remaining)
    state.spent_today_usd_micros = status.spent_today_micros
    state.spent_this_month_usd_micros = status.spent_this_month_micros
    return state
