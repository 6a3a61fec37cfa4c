"""QuotaService: a caller's own limits, what remains of them, its spend and what it
holds in the result store (read-only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import duration_pb2
from imagegate.v1 import quota_pb2

from imagegate_server.gateway.edge.callers import Authenticator, Caller
from imagegate_server.gateway.edge.guard import Context, Guard
from imagegate_server.gateway.edge.rpc import RpcCall
from imagegate_server.gateway.edge.storage import Storage
from imagegate_server.gateway.edge.tenancy import Tenancy
from imagegate_server.jobs.model import now_ms
from imagegate_server.jobs.service import Jobs
from imagegate_server.metrics import RpcMetrics
from imagegate_server.models import Operation
from imagegate_server.pricing import PriceTable

_PERIODS = {"day": quota_pb2.BUDGET_PERIOD_DAY, "month": quota_pb2.BUDGET_PERIOD_MONTH}
_OPERATIONS = {
    Operation.GENERATION: quota_pb2.OPERATION_GENERATION,
    Operation.EDIT: quota_pb2.OPERATION_EDIT,
    Operation.VARIATION: quota_pb2.OPERATION_VARIATION,
}


class QuotaServicer:
    def __init__(
        self,
        callers: Authenticator,
        tenancy: Tenancy,
        storage: Storage,
        prices: PriceTable,
        guard: Guard,
        metrics: RpcMetrics | None = None,
        jobs: Jobs | None = None,
    ) -> None:
        self._jobs = jobs
        self._callers = callers
        self._tenancy = tenancy
        self._storage = storage
        self._prices = prices
        self._guard = guard
        self._metrics = metrics

    def behaviours(self) -> dict[str, Callable[..., Any]]:
        return {"GetQuota": self.get_quota}

    async def get_quota(self, request: Any, context: Context) -> quota_pb2.GetQuotaResponse:
        call = self._guard.begin("GetQuota", context, self._metrics)
        call.received()
        response = await self._guard.unary(call, context, self._quota(context, call))
        call.sent()
        return response

    async def _quota(self, context: Context, call: RpcCall) -> quota_pb2.GetQuotaResponse:
        caller = self._callers.authenticate(context)
        call.client = caller.client
        status = await self._tenancy.status(caller)
        response = _policy(caller)
        response.price_table = self._prices.version_label
        for rate in status.rates:
            full_in = duration_pb2.Duration()
            full_in.FromNanoseconds(int(rate.full_in_s * 1e9))
            response.rates.add(
                name=rate.name,
                per_minute=rate.per_minute,
                burst=rate.burst,
                remaining=rate.remaining,
                full_in=full_in,
                gateway_wide=rate.scope == "",
            )
        if status.max_concurrent is not None:
            response.concurrency.max_concurrent = status.max_concurrent
            response.concurrency.in_use = status.concurrent_in_use
        for budget in status.budgets:
            entry = response.budgets.add(
                name=budget.name,
                period=_PERIODS[budget.period],
                limit_usd_micros=budget.limit_micros,
                spent_usd_micros=budget.spent_micros,
                reserved_usd_micros=budget.reserved_micros,
                remaining_usd_micros=budget.remaining_micros,
            )
            entry.period_ends_at.FromDatetime(budget.period_ends_at)
        response.spent_today_usd_micros = status.spent_today_micros
        response.spent_this_month_usd_micros = status.spent_this_month_micros
        response.reserved_usd_micros = status.reserved_micros
        for spend in await self._tenancy.upstream_spend(caller, status):
            response.upstream_spend.add(
                upstream=spend.upstream,
                spent_today_usd_micros=spend.spent_today_micros,
                spent_this_month_usd_micros=spend.spent_this_month_micros,
            )
        await self._storage_quota(caller, response.storage)
        if self._jobs is not None:
            await self._jobs_quota(caller, response.jobs)
        return response

    async def _storage_quota(self, caller: Caller, storage: quota_pb2.StorageQuota) -> None:
        policy = caller.policy
        held = await self._storage.holding(caller)
        storage.may_store = policy.store_results
        storage.stored_bytes = held.size
        storage.stored_objects = held.objects
        if policy.max_stored_bytes is not None:
            storage.max_stored_bytes = policy.max_stored_bytes
        storage.retention.FromTimedelta(self._storage.retention(policy))

    async def _jobs_quota(self, caller: Caller, quota: quota_pb2.JobsQuota) -> None:
        assert self._jobs is not None
        jobs = await self._jobs.client_jobs(caller.client)
        quota.queued, quota.running = jobs.queued, jobs.running
        if caller.policy.max_queued_jobs is not None:
            quota.max_queued = caller.policy.max_queued_jobs
        if jobs.oldest_queued_ms is not None:
            quota.oldest_queued_age.FromMilliseconds(max(0, now_ms() - jobs.oldest_queued_ms))


def _policy(caller: Caller) -> quota_pb2.GetQuotaResponse:
    policy = caller.policy
    response = quota_pb2.GetQuotaResponse(client=caller.client)
    if policy.max_n is not None:
        response.max_n = policy.max_n
    response.all_models = policy.models is None
    response.model_patterns.extend(policy.models or ())
    allowed = [op for op in Operation if policy.allows_operation(op)]
    response.operations.extend(_OPERATIONS[op] for op in allowed)
    response.upstreams.extend(policy.upstreams or ())
    return response
