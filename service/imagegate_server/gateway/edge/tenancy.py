"""Each caller inside its share: policy checks, admission against its limits and
budgets before the upstream call, and settlement of the real cost after it.

    check     the caller's policy: operation, model and n (PERMISSION_DENIED)
    hold_slot an upload's concurrency slot, taken when it is authenticated (before
              its parameters arrive), so that uploads that are slow to start, or
              never do, count against ``max_concurrent``; ``admit`` takes it over
    admit     requests and images per minute (a call costs its n), the gateway-wide
              images-per-minute ceiling, concurrent calls, and the spend budgets, all
              at once or none (RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo);
              a budget reserves the call's estimate
    settle    the call's real cost from its usage (also booked to the upstream that
              answered, with an upstreams file); a call that failed costs nothing,
              unless OpenAI may have billed it (the request reached the model and no
              answer came back: a broken connection, a timeout, the caller gone),
              then its estimate, since OpenAI bills generations whose answer is lost
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from imagegate_server.clients import Policy
from imagegate_server.errors import ModelUnpriced, NotPermitted, may_have_billed
from imagegate_server.gateway.edge.callers import Caller
from imagegate_server.gateway.requests.draft import Draft
from imagegate_server.limits import (
    Admission,
    Budget,
    ClientStatus,
    Limiter,
    RateLimit,
    Ticket,
    UpstreamSpend,
)
from imagegate_server.metrics.labels import DEFAULT_UPSTREAM
from imagegate_server.pricing import PriceTable
from imagegate_server.settings import Settings
from imagegate_server.wording import plural

log = logging.getLogger(__name__)


@dataclass
class Charge:
    """One admitted call's account: settle exactly once, however the call ends."""

    caller: Caller
    ticket: Ticket
    estimate_micros: int
    """What the call would cost by the price table's estimate (0 when unpriced)."""
    cost_micros: int | None = None
    """The real cost, once the answer's usage priced it."""
    upstream_started: bool = field(default=False)
    """The request went upstream: from here on, a failure may have been billed."""
    slot: Ticket | None = None
    """The upload's slot from :meth:`Tenancy.hold_slot`: taken over by ``ticket``,
    unless the limiter let the call through uncounted; then freed at settle."""
    upstream: str | None = None
    """The upstream the call went to last: the one that answered, or that failed."""

    def attempting(self, upstream: str) -> None:
        """The router sends the call to ``upstream`` now."""
        self.upstream = upstream

    def amount_for(self, error: BaseException | None) -> int:
        if self.cost_micros is not None:
            return self.cost_micros
        if self.upstream_started and may_have_billed(error):
            return self.estimate_micros
        return 0


class Tenancy:
    def __init__(self, limiter: Limiter, prices: PriceTable, settings: Settings) -> None:
        self._limiter = limiter
        self._prices = prices
        self._settings = settings
        # Spend per upstream is kept apart only for the upstreams of a file: with one
        # upstream it is every client's spend, and booking it would cost a store
        # command per call.
        self._per_upstream = settings.upstreams_file is not None

    def check(self, caller: Caller, draft: Draft) -> None:
        policy, client = caller.policy, caller.client
        operation = draft.operation
        if not policy.allows_operation(operation):
            raise NotPermitted(
                "OPERATION_NOT_ALLOWED",
                f"client '{client}' may not call image {operation.value}s",
                {"client": client, "operation": operation.value},
            )
        if not policy.allows_model(draft.model):
            raise NotPermitted(
                "MODEL_NOT_ALLOWED",
                f"client '{client}' may not use model '{draft.model[:100]}'",
                {"client": client, "model": draft.model[:100]},
            )
        if policy.max_n is not None and draft.n > policy.max_n:
            raise NotPermitted(
                "N_ABOVE_CLIENT_LIMIT",
                f"client '{client}' may ask for at most {plural(policy.max_n, 'image')} per call",
                {"client": client, "max_n": str(policy.max_n)},
            )

    @property
    def limiter_state(self) -> str:
        """The limiter's store: ``up``, ``refusing`` or ``unreachable``."""
        return self._limiter.state

    def _estimate_inputs(self, draft: Draft) -> dict[str, Any]:
        params = draft.params
        return {
            "quality": _text(params.get("quality")),
            "size": _text(params.get("size")),
            "n": draft.n,
            "prompt_chars": len(_text(params.get("prompt")) or ""),
            "input_images": draft.input_images,
            "partial_images": _count(params.get("partial_images")),
            "input_fidelity": _text(params.get("input_fidelity")),
        }

    @property
    def _hold_s(self) -> float:
        # A slot and a reservation outlive the longest call by the margin before they
        # expire on their own (a replica that died holding them).
        return self._settings.upstream_timeout_s + self._settings.limit_hold_margin_s

    async def hold_slot(self, caller: Caller) -> Ticket | None:
        """Take an upload's concurrency slot before its parameters arrive (None: its
        client has no concurrency limit). Free it with :meth:`release` unless
        :meth:`admit` took it over."""
        limit = caller.policy.max_concurrent
        if limit is None:
            return None
        return await self._limiter.admit(
            Admission(client=caller.client, max_concurrent=limit, hold_s=self._hold_s)
        )

    async def release(self, slot: Ticket | None) -> None:
        """Free a slot that no admission took over (a no-op for one that was)."""
        if slot is not None and not slot.settled:
            await asyncio.shield(self._limiter.settle(slot, 0))

    def _estimate(self, caller: Caller, draft: Draft, budgets: tuple[Budget, ...]) -> int:
        inputs = self._estimate_inputs(draft)
        estimate = self._prices.estimate_micros(draft.model, **inputs)
        if estimate is None:
            if budgets and self._settings.unpriced_models == "refuse":
                raise ModelUnpriced(draft.model)
            # reserve_max: the dearest model the table knows stands in for this one.
            estimate = (self._prices.max_estimate_micros(**inputs) or 0) if budgets else 0
        return estimate

    async def admit(self, caller: Caller, draft: Draft, slot: Ticket | None = None) -> Charge:
        """Admit the call all or nothing, taking over ``slot`` (from :meth:`hold_slot`)."""
        policy = caller.policy
        budgets = _budgets(policy)
        estimate = self._estimate(caller, draft, budgets)
        admission = Admission(
            client=caller.client,
            rates=self._rates(caller, draft.n),
            max_concurrent=policy.max_concurrent,
            budgets=budgets,
            reserve_micros=estimate if budgets else 0,
            hold_s=self._hold_s,
            replaces=slot,
        )
        ticket = await self._limiter.admit(admission)
        return Charge(caller, ticket, estimate, slot=slot)

    async def reserve(self, caller: Caller, draft: Draft, hold_s: float) -> Charge:
        """A job's budget reservation, at submit: its estimate held against the
        client's budgets for ``hold_s`` (its queue time and run), no rate and no
        slot yet (those apply when it starts: :meth:`start`)."""
        budgets = _budgets(caller.policy)
        estimate = self._estimate(caller, draft, budgets)
        admission = Admission(
            client=caller.client,
            budgets=budgets,
            reserve_micros=estimate if budgets else 0,
            hold_s=hold_s,
            holds_slot=False,  # a queued job is no call in flight; its start takes a slot
        )
        return Charge(caller, await self._limiter.admit(admission), estimate)

    async def start(self, caller: Caller, n: int) -> Ticket:
        """A job starting: the client's rates (a job costs its ``n`` images), the
        gateway-wide ceiling and a concurrency slot; its budget was reserved at submit."""
        admission = Admission(
            client=caller.client,
            rates=self._rates(caller, n),
            max_concurrent=caller.policy.max_concurrent,
            hold_s=self._hold_s,
        )
        return await self._limiter.admit(admission)

    async def settle_ticket(
        self, ticket: Ticket, amount_micros: int, upstream: str | None = None
    ) -> None:
        """Settle a job's ticket (a slot: 0; a reservation: what the job cost, booked
        to ``upstream`` too when it is known and there are several, as :meth:`settle`)."""
        booked_to = upstream if self._per_upstream else None
        await asyncio.shield(self._limiter.settle(ticket, amount_micros, booked_to))

    async def status(self, caller: Caller) -> ClientStatus:
        """The caller's limits as they stand (charges nothing)."""
        policy = caller.policy
        rates = self._rates(caller, 1)
        return await self._limiter.status(
            caller.client, rates, policy.max_concurrent, _budgets(policy)
        )

    async def upstream_spend(
        self, caller: Caller, status: ClientStatus
    ) -> tuple[UpstreamSpend, ...]:
        """The caller's spend per upstream that answered it (charges nothing). With no
        upstreams file every call went to the one upstream, so its spend is the
        client's (``status``), and nothing per upstream is stored to read."""
        if self._per_upstream:
            return await self._limiter.client_upstream_spend(caller.client)
        if not status.spent_this_month_micros:
            return ()
        return (
            UpstreamSpend(
                DEFAULT_UPSTREAM, status.spent_today_micros, status.spent_this_month_micros
            ),
        )

    async def settle(self, charge: Charge, error: BaseException | None) -> int:
        """Book what the call cost (see :meth:`Charge.amount_for`); returns it."""
        amount = charge.amount_for(error)
        upstream = charge.upstream if self._per_upstream else None
        # Shielded: a settle cut short by a second cancellation would leave the
        # reservation to expire instead of being booked now.
        await asyncio.shield(self._limiter.settle(charge.ticket, amount, upstream))
        await self.release(charge.slot)
        return amount

    def _rates(self, caller: Caller, n: int) -> tuple[RateLimit, ...]:
        policy, client = caller.policy, caller.client
        rates = []
        for name, per_minute, cost, scope in (
            ("requests_per_minute", policy.requests_per_minute, 1, client),
            ("images_per_minute", policy.images_per_minute, n, client),
            ("gateway_images_per_minute", self._settings.gateway_images_per_minute, n, ""),
        ):
            if per_minute is not None:
                rates.append(RateLimit(name, per_minute, per_minute, cost, scope))
        return tuple(rates)


def _budgets(policy: Policy) -> tuple[Budget, ...]:
    budgets = []
    if policy.daily_budget_micro_usd is not None:
        budgets.append(Budget("daily_budget", "day", policy.daily_budget_micro_usd))
    if policy.monthly_budget_micro_usd is not None:
        budgets.append(Budget("monthly_budget", "month", policy.monthly_budget_micro_usd))
    return tuple(budgets)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0
