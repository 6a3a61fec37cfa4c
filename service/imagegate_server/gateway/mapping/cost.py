"""The call's cost, from its judged usage and the price table, into the result.

The usage an answer reports is judged first (:mod:`.usage`): one that cannot be
trusted charges nothing by itself. Streamed calls report usage per completed event;
they are combined (:func:`imagegate_server.pricing.combine_streamed`) before the
whole call is priced, so a streamed call costs what the same call made unary does,
plus what OpenAI bills for its partial images.

A call priced by its estimate (a model priced by tokens that reported none, or none
to trust) is charged the estimate of what it returned, but never more than the
estimate it was admitted with, which its budget reservation holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.gateway.contract import enum_text
from imagegate_server.gateway.mapping.results import Finished
from imagegate_server.gateway.mapping.usage import UsageJudge, UsageObserver
from imagegate_server.pricing import CostBasis, PriceTable, TokenUsage

_BASIS = {
    CostBasis.USAGE: results_pb2.COST_BASIS_USAGE,
    CostBasis.PER_IMAGE: results_pb2.COST_BASIS_PER_IMAGE,
    CostBasis.ESTIMATE: results_pb2.COST_BASIS_ESTIMATE,
}


class Pricer:
    """Prices finished calls, each with the price table of the upstream that answered
    it (``prices_for``: an upstream's own prices, or the gateway's); usage is judged
    against the gateway's ``prices``."""

    def __init__(
        self,
        prices_for: Callable[[str | None], PriceTable],
        prices: PriceTable,
        observer: UsageObserver,
    ) -> None:
        self._prices_for = prices_for
        self._judge = UsageJudge(prices, observer)

    def price(
        self,
        finished: Finished,
        params: Mapping[str, Any],
        *,
        input_images: int,
        estimate_micros: int,
    ) -> int | None:
        """Set the result's usage (when trusted) and cost; return the cost in
        micro-dollars (None: the model has no price). ``estimate_micros``: what the
        call was admitted with."""
        result = finished.result
        usage = self._judge.judge(
            finished.usage_reports,
            params,
            images=len(result.images),
            input_images=input_images,
            upstream=result.upstream,
        )
        if usage is not None:
            set_usage(result, usage)
        prices = self._prices_for(result.upstream or None)
        return price(prices, result, usage, params, input_images, estimate_micros)


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
    usage: TokenUsage | None,
    params: Mapping[str, Any],
    input_images: int,
    estimate_micros: int,
) -> int | None:
    """Set ``result.cost`` from ``usage`` (judged already; None: none to go by);
    return the cost in micro-dollars (None: the model has no price)."""
    model = str(params["model"])
    size = result.size or _text(params.get("size"))
    quality = _text(params.get("quality"))
    if result.quality:  # what OpenAI says it used beats what was asked for
        quality = enum_text(params_pb2.Quality.DESCRIPTOR, result.quality)
    prompt = _text(params.get("prompt")) or ""
    partial = params.get("partial_images")
    cost = prices.cost(
        model,
        usage,
        images=len(result.images),
        size=size,
        quality=quality,
        prompt_chars=len(prompt),
        input_images=input_images,
        partial_images=partial if isinstance(partial, int) and partial > 0 else 0,
        input_fidelity=_text(params.get("input_fidelity")),
    )
    result.cost.price_table = prices.version_label
    if cost is None:
        result.cost.basis = results_pb2.COST_BASIS_UNPRICED
        return None
    micros = cost.micros
    if cost.basis is CostBasis.ESTIMATE:
        micros = min(micros, estimate_micros)
    result.cost.usd_micros = micros
    result.cost.basis = _BASIS[cost.basis]
    return micros


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
