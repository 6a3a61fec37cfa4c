"""What image calls cost: a dated price table, costs from ``usage``, reservation
estimates. Self-contained: no gRPC, no protobuf, no limiter.

Public API
    :func:`load_price_table` (settings -> :class:`PriceTable`), :func:`load_prices`
    (an override path -> table), :class:`PriceTable` (:meth:`~PriceTable.cost`,
    :meth:`~PriceTable.cost_micros`, :meth:`~PriceTable.estimate_micros`,
    :meth:`~PriceTable.max_estimate_micros`, :meth:`~PriceTable.resolve`),
    :class:`TokenUsage` with :meth:`TokenUsage.from_openai`, :func:`combine_streamed`,
    :func:`usage_ceiling` (the most tokens a call can have used: :class:`UsageCeiling`),
    :class:`CallCost` / :class:`CostBasis`, and the errors :class:`PricesFileError`
    and :class:`InvalidUsage`.

The table
    ``prices.toml`` in this package (dated by its ``version``; every entry cites its
    source) holds USD per 1M tokens for GPT image models, USD per image by quality
    and size for DALL-E models, and the assumptions of estimates. An operator file
    with the same schema (``IMAGEGATE_PRICES_FILE``) is merged over it per entry.

Money
    Integer micro-dollars everywhere. USD per 1M tokens is micro-dollars per token,
    so a cost is an exact decimal sum, rounded once per call: half up for a cost,
    up for an estimate (:mod:`.money`).

Costs
    A GPT image model's cost is its ``usage`` priced: text in, image in, image out,
    text out (output tokens without a breakdown are image output; text output of a
    model without a text-output rate is priced as image output). Usage covers the
    whole call and is never multiplied by ``n``. DALL-E models report no usage: the
    per-image price times the images returned. A streamed call's completed events
    each carry usage: :func:`combine_streamed` adds them up so that the streamed
    cost equals the unary one plus the partial images OpenAI bills.
"""

from imagegate_server.pricing.ceilings import UsageCeiling, usage_ceiling
from imagegate_server.pricing.fields import PricesFileError
from imagegate_server.pricing.loading import load_price_table, load_prices
from imagegate_server.pricing.table import CallCost, CostBasis, PriceTable
from imagegate_server.pricing.usage import MAX_TOKENS, InvalidUsage, TokenUsage, combine_streamed

__all__ = [
    "MAX_TOKENS",
    "CallCost",
    "CostBasis",
    "InvalidUsage",
    "PriceTable",
    "PricesFileError",
    "TokenUsage",
    "UsageCeiling",
    "combine_streamed",
    "load_price_table",
    "load_prices",
    "usage_ceiling",
]
