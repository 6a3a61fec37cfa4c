"""AdminService.ListUpstreams: the upstreams this gateway routes to, for operators.

Each upstream as the answering process sees it: its circuit (breakers are per
process), and from the limiter's store (shared like every limit) its headroom
under its own ceilings and its spend today and this month. Authorised like
ListClientSpend: only clients marked ``operator = true``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from imagegate.v1 import admin_pb2

from imagegate_server.errors import InvalidRequest
from imagegate_server.gateway.edge.admin import require_operator
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.wire import Malformed
from imagegate_server.limits import Limiter
from imagegate_server.metrics import RpcMetrics
from imagegate_server.routing import Route, Router


class UpstreamsServicer:
    def __init__(
        self,
        callers: Authenticator,
        router: Router,
        limiter: Limiter,
        guard: Guard,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._callers = callers
        self._router = router
        self._limiter = limiter
        self._guard = guard
        self._metrics = metrics

    def behaviours(self) -> dict[str, Callable[..., Any]]:
        return {"ListUpstreams": self.list_upstreams}

    async def list_upstreams(
        self, request: Any, context: Context
    ) -> admin_pb2.ListUpstreamsResponse:
        call = self._guard.begin("ListUpstreams", context, self._metrics)
        call.received()
        response = await self._guard.unary(call, context, self._list(request, context, call))
        call.sent()
        return response

    async def _list(
        self, request: Any, context: Context, call: RpcCall
    ) -> admin_pb2.ListUpstreamsResponse:
        if isinstance(request, Malformed):
            raise InvalidRequest.one(
                "request",
                "not a valid protobuf message of this RPC's request type",
                "malformed_message",
            )
        caller = self._callers.authenticate(context)
        call.client = caller.client
        require_operator(caller)
        response = admin_pb2.ListUpstreamsResponse(
            from_file=self._router.from_file, limits_store=self._limiter.backend
        )
        response.as_of.FromDatetime(datetime.now(UTC))
        for route in self._router.routes:
            response.upstreams.append(await self._state(route))
        return response

    async def _state(self, route: Route) -> admin_pb2.UpstreamState:
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
        rates = spec.ceilings()
        if not rates and not self._router.from_file:
            return state
        status = await self._limiter.upstream_status(route.name, rates)
        for rate in status.rates:
            state.ceilings.add(name=rate.name, per_minute=rate.per_minute, remaining=rate.remaining)
        state.spent_today_usd_micros = status.spent_today_micros
        state.spent_this_month_usd_micros = status.spent_this_month_micros
        return state
