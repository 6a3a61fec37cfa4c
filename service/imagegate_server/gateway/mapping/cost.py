"""The call's cost, from the result's usage and the price table, into the result.

Streamed calls report usage per completed event; :mod:`.events` combines them
(:func:`imagegate_server.pricing.combine_streamed`) before this prices the whole
call, so a streamed call costs what the same call made unary does, plus what OpenAI
bills for its partial images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.gateway.contract import enum_text
from imagegate_server.pricing import CostBasis, PriceTable, TokenUsage

_BASIS = {
    CostBasis.USAGE: results_pb2.COST_BASIS_USAGE,
    CostBasis.PER_IMAGE: results_pb2.COST_BASIS_PER_IMAGE,
    CostBasis.ESTIMATE: results_pb2.COST_BASIS_ESTIMATE,
}


def usage_of(result: results_pb2.ImagesResult) -> TokenUsage | None:
    """The result's token usage (None for models that report none)."""
    if not result.HasField("usage"):
        return None
    usage = result.usage
    itemised = usage.HasField("output_tokens_details")
    details = usage.output_tokens_details
    text_out = details.text_tokens if itemised else 0
    return TokenUsage(
        text_in=usage.input_tokens_details.text_tokens,
        image_in=usage.input_tokens_details.image_tokens,
        text_out=text_out,
        image_out=max(details.image_tokens, usage.output_tokens - text_out),
        output_itemised=itemised,
    )


def set_usage(result: results_pb2.ImagesResult, usage: TokenUsage) -> None:
    """Write ``usage`` into the result as OpenAI reports it."""
    target = result.usage
    target.input_tokens = usage.text_in + usage.image_in
    target.input_tokens_details.text_tokens = usage.text_in
    target.input_tokens_details.image_tokens = usage.image_in
    target.output_tokens = usage.text_out + usage.image_out
    target.total_tokens = target.input_tokens + target.output_tokens
    if usage.output_itemised:
        target.output_tokens_details.text_tokens = usage.text_out
        target.output_tokens_details.image_tokens = usage.image_out
    else:
        target.ClearField("output_tokens_details")


def price(
    prices: PriceTable,
    result: results_pb2.ImagesResult,
    params: Mapping[str, Any],
    input_images: int,
) -> int | None:
    """Set ``result.cost``; return the cost in micro-dollars (None: the model has no price)."""
    model = str(params["model"])
    size = result.size or _text(params.get("size"))
    quality = _text(params.get("quality"))
    if result.quality:  # what OpenAI says it used beats what was asked for
        quality = enum_text(params_pb2.Quality.DESCRIPTOR, result.quality)
    prompt = _text(params.get("prompt")) or ""
    partial = params.get("partial_images")
    cost = prices.cost(
        model,
        usage_of(result),
        images=len(result.images),
        size=size,
        quality=quality,
        prompt_chars=len(prompt),
        input_images=input_images,
        partial_images=partial if isinstance(partial, int) else 0,
        input_fidelity=_text(params.get("input_fidelity")),
    )
    result.cost.price_table = prices.version_label
    if cost is None:
        result.cost.basis = results_pb2.COST_BASIS_UNPRICED
        return None
    result.cost.usd_micros = cost.micros
    result.cost.basis = _BASIS[cost.basis]
    return cost.micros


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
