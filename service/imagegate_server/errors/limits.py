"""Refusals by the gateway's own limits: a client's or the fleet's rates,
concurrency and budgets, a budget that cannot be enforced, a limits store that is
down, and a result too large for a unary answer."""

from __future__ import annotations

from imagegate_server.errors.base import ImagegateError


class ModelUnpriced(ImagegateError):
    """The caller has a spend budget, but the price table cannot price the model, and
    the operator's policy is to refuse rather than reserve the table's maximum."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"model '{model[:100]}' has no price in this gateway's price table, so the "
            "caller's spend budget cannot be enforced; ask the operator to price it"
        )
        self.model = model


class LimitExceeded(ImagegateError):
    def __init__(self, subject: str, description: str) -> None:
        super().__init__(description)
        self.subject = subject


class LimitRefused(LimitExceeded):
    """The limiter refused a call: one named limit (the ``QuotaFailure`` subject) is spent.

    ``retry_after_s`` is when that limit frees: exact for rates, the start of the next
    UTC day or month for budgets, None when no wait can be known (concurrent calls end
    when they end) or when no wait helps (``permanent``: the call alone exceeds the
    limit, e.g. ``n`` above the burst, or a reservation above the whole budget).
    """

    def __init__(
        self,
        limit: str,
        description: str,
        *,
        client: str,
        retry_after_s: float | None,
        permanent: bool = False,
        gateway_wide: bool = False,
    ) -> None:
        super().__init__(limit, description)
        self.limit = limit
        self.client = client
        self.retry_after_s = retry_after_s
        self.permanent = permanent
        self.gateway_wide = gateway_wide
        """The limit is the gateway-wide ceiling every client shares, not the client's."""


class LimiterUnavailable(ImagegateError):
    """The shared limits store (Redis) cannot be reached and a kind of limit this call
    needs fails closed (by default: budgets). The message names no address or secret."""


class ResultTooLarge(ImagegateError):
    pass
