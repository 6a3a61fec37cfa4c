"""AdminService: the operator's views of the gateway, for operator clients only.

``ListClientSpend`` lists every client's spend from the limiter's own store, so an
operator can see it whatever the store (this process's memory can be read no other
way). Authorisation: the caller authenticates like any caller, and its client must
be marked ``operator = true`` in the clients file; everyone else, anonymous callers
included, gets PERMISSION_DENIED before the store is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imagegate.v1 import admin_pb2

from imagegate_server.clients import ClientsFile
from imagegate_server.errors import InvalidRequest, NotPermitted
from imagegate_server.gateway.edge.callers import Authenticator
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.wire import Malformed
from imagegate_server.limits import MAX_SPEND_LISTING, Limiter
from imagegate_server.metrics import RpcMetrics
from imagegate_server.pricing import PriceTable


class AdminServicer:
    def __init__(
        self,
        callers: Authenticator,
        clients: ClientsFile | None,
        limiter: Limiter,
        prices: PriceTable,
        guard: Guard,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._callers = callers
        self._clients = clients
        self._limiter = limiter
        self._prices = prices
        self._guard = guard
        self._metrics = metrics

    def behaviours(self) -> dict[str, Callable[..., Any]]:
        return {"ListClientSpend": self.list_client_spend}

    async def list_client_spend(
        self, request: Any, context: Context
    ) -> admin_pb2.ListClientSpendResponse:
        call = self._guard.begin("ListClientSpend", context, self._metrics)
        call.received()
        response = await self._guard.unary(call, context, self._list(request, context, call))
        call.sent()
        return response

    async def _list(
        self, request: Any, context: Context, call: RpcCall
    ) -> admin_pb2.ListClientSpendResponse:
        caller = self._callers.authenticate(context)
        call.client = caller.client
        if not caller.policy.operator:
            raise NotPermitted(
                "NOT_AN_OPERATOR",
                f"client '{caller.client[:100]}' may not call AdminService: only clients "
                f"marked operator = true in the clients file may",
                {"client": caller.client[:100]},
            )
        limit = _max_clients(request)
        listing = await self._limiter.list_spend(limit)
        registry = self._clients.current() if self._clients is not None else None
        response = admin_pb2.ListClientSpendResponse(
            truncated=listing.truncated,
            limits_store=self._limiter.backend,
            price_table=self._prices.version_label,
        )
        response.as_of.FromDatetime(listing.as_of)
        for spend in listing.clients:
            entry = response.clients.add(
                client=spend.client,
                spent_today_usd_micros=spend.spent_today_micros,
                spent_this_month_usd_micros=spend.spent_this_month_micros,
                reserved_usd_micros=spend.reserved_micros,
                calls_in_flight=spend.in_flight,
            )
            known = registry.get(spend.client) if registry is not None else None
            policy = known.policy if known is not None else None
            if policy is not None and policy.daily_budget_micro_usd is not None:
                entry.daily_budget_usd_micros = policy.daily_budget_micro_usd
            if policy is not None and policy.monthly_budget_micro_usd is not None:
                entry.monthly_budget_usd_micros = policy.monthly_budget_micro_usd
        return response


def _max_clients(request: Any) -> int:
    if isinstance(request, Malformed):
        raise InvalidRequest.one(
            "request",
            "not a valid protobuf message of this RPC's request type",
            "malformed_message",
        )
    asked = int(request.max_clients)
    if asked > MAX_SPEND_LISTING:
        raise InvalidRequest.one(
            "max_clients", f"must be at most {MAX_SPEND_LISTING}", "out_of_range"
        )
    return asked or MAX_SPEND_LISTING
