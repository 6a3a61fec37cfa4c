"""The usage an answer reports, judged before the call is charged by it.

A call is charged by the ``usage`` its answer reports, so a usage that cannot be
trusted must not set the charge: token counts that are missing (from a model priced
by tokens), no integers, negative, or beyond what the model can produce for the
request (:func:`~imagegate_server.pricing.usage_ceiling`) are a protocol anomaly.
The call keeps its images and is charged its estimate instead, never 0 and never
more than its reservation holds (:mod:`.cost`); its result carries no usage.

Each anomaly is counted (``imagegate_upstream_usage_anomalies_total{kind}``) and
logged once per upstream and kind, not per call: an upstream that reports no usage
at all would otherwise log every call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imagegate_server.pricing import (
    MAX_TOKENS,
    InvalidUsage,
    PriceTable,
    TokenUsage,
    combine_streamed,
    usage_ceiling,
)
from imagegate_server.pricing.entries import TokenPrices

log = logging.getLogger(__name__)

MISSING, INVALID, IMPLAUSIBLE = "missing", "invalid", "implausible"


class UsageObserver(Protocol):
    """Told of each anomaly (metrics observe; they never steer)."""

    def usage_anomaly(self, kind: str) -> None:
        """``kind``: ``missing``, ``invalid`` or ``implausible``."""


# Upstream names come from the operator's file; this bounds the set across reloads.
_MAX_LOGGED = 1024


class UsageJudge:
    """Judges the usage of every call (logged once per upstream and kind)."""

    def __init__(self, prices: PriceTable, observer: UsageObserver) -> None:
        self._prices = prices
        self._observer = observer
        self._logged: set[tuple[str, str]] = set()

    def judge(
        self,
        reports: Sequence[object],
        params: Mapping[str, Any],
        *,
        images: int,
        input_images: int,
        upstream: str = "",
    ) -> TokenUsage | None:
        """The usage of a call with ``params`` that returned ``images``, from
        ``reports`` (the answer's ``usage``, or each completed event's, as sent; None
        for one that had none); None when there is none, or none to trust (then the
        call is charged its estimate)."""
        model = str(params.get("model", ""))
        judged = self._usage(reports, params, model, images, input_images)
        if not isinstance(judged, Anomaly):
            return judged
        self._observer.usage_anomaly(judged.kind)
        if (upstream, judged.kind) not in self._logged and len(self._logged) < _MAX_LOGGED:
            self._logged.add((upstream, judged.kind))
            log.warning(
                "the upstream reported a token usage that cannot be trusted: such calls are "
                "charged their estimate (logged once per upstream and kind; "
                "imagegate_upstream_usage_anomalies_total counts every call)",
                extra={
                    "upstream": upstream,
                    "anomaly": judged.kind,
                    "model": model[:100],
                    "problem": judged.problem,
                },
            )
        return None

    def _usage(
        self,
        reports: Sequence[object],
        params: Mapping[str, Any],
        model: str,
        images: int,
        input_images: int,
    ) -> TokenUsage | Anomaly | None:
        by_tokens = isinstance(self._prices.prices(model), TokenPrices)
        usages = []
        for report in reports:
            if report is None:
                if by_tokens:
                    return Anomaly(MISSING, "usage: is missing")
                continue
            if not isinstance(report, Mapping):
                return Anomaly(INVALID, "usage: must be an object")
            try:
                usages.append(TokenUsage.from_openai(report))
            except InvalidUsage as problem:
                return Anomaly(INVALID, str(problem))
        usage = combine_streamed(usages)
        if usage is None:
            return None
        prompt, n = params.get("prompt"), params.get("n")
        partial = params.get("partial_images")
        ceiling = usage_ceiling(
            self._prices,
            model,
            size=_text(params.get("size")),
            n=max(images, n if isinstance(n, int) else 1),
            prompt_bytes=len(prompt.encode("utf-8", "replace")) if isinstance(prompt, str) else 0,
            input_images=input_images,
            partial_images=partial if isinstance(partial, int) and partial > 0 else 0,
        )
        too_many = max(usage.input_tokens, usage.output_tokens) > MAX_TOKENS
        if too_many or (ceiling is not None and not ceiling.admits(usage)):
            return Anomaly(IMPLAUSIBLE, "usage: beyond what the call can produce")
        return usage


@dataclass(frozen=True)
class Anomaly:
    kind: str
    problem: str
    """What is wrong, naming the field, never its value."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
