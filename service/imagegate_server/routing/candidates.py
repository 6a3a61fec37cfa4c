"""Which of the routes may take a call, in what order, and the refusal when none
can: the first and last steps of :meth:`~.router.Router.send`.

Candidates serve the call's model, are allowed by the client's policy and take the
request (Azure: no WebP, no variations); otherwise the call is refused before
anything is sent (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT naming the field).
They are ordered by priority, then weighted random within a priority. When every
candidate was passed by, the refusal says why: their ceilings (RESOURCE_EXHAUSTED,
with the soonest wait) or their open circuits (UNAVAILABLE).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from imagegate_server.errors import (
    InvalidRequest,
    LimitRefused,
    NotPermitted,
    NoUpstream,
    UpstreamUnreachable,
)
from imagegate_server.upstream import ImagesRequest

if TYPE_CHECKING:  # the router imports this module
    from imagegate_server.routing.router import Route

CEILING_LIMIT = "upstream_ceiling"
"""The limit a call refused by every candidate's ceilings is refused for."""


def candidates(
    routes: Sequence[Route], request: ImagesRequest, allowed: tuple[str, ...] | None
) -> list[Route]:
    """The routes that may take ``request`` for a client allowed ``allowed`` (None:
    any); raises the refusal when there are none."""
    model = str(request.params.get("model", ""))
    serving = [route for route in routes if route.spec.serves(model)]
    if not serving:
        raise NoUpstream(model)
    permitted = serving if allowed is None else [r for r in serving if r.name in allowed]
    if not permitted:
        raise not_allowed(request)
    taking = []
    refused = []
    for route in permitted:
        problems = route.upstream.unsupported(request)
        if problems:
            refused += [p for p in problems if p not in refused]
        else:
            taking.append(route)
    if not taking:
        raise InvalidRequest(refused)
    return taking


def order(candidates: list[Route]) -> list[Route]:
    """By priority (lower first), then a weighted random order within each priority
    (the first pick is route i with probability w_i / sum w)."""
    if len(candidates) == 1:
        return candidates
    # Weighted random order (Efraimidis-Spirakis): u ** (1 / w) per route, largest
    # first, within each priority.
    keyed = [
        (route.spec.priority, -(random.random() ** (1 / route.spec.weight)), index)  # noqa: S311
        for index, route in enumerate(candidates)
    ]
    keyed.sort()
    return [candidates[index] for _, _, index in keyed]


def not_allowed(request: ImagesRequest) -> NotPermitted:
    """The refusal of a client whose policy allows no upstream that serves the model."""
    model = str(request.params.get("model", ""))[:100]
    return NotPermitted(
        "UPSTREAM_NOT_ALLOWED",
        f"no upstream this client may use serves model '{model}'",
        {"model": model},
    )


def nothing_left(
    request: ImagesRequest, ordered: Sequence[Route], waits: Sequence[float]
) -> Exception:
    """The refusal when every candidate was passed by: at its ceiling (``waits``, one
    per candidate at one) or with its circuit open."""
    model = str(request.params.get("model", ""))[:100]
    if waits:
        soonest = min(waits)
        never = math.isinf(soonest)
        return LimitRefused(
            CEILING_LIMIT,
            f"every upstream that may serve model '{model}' is at its requests or "
            "images per minute ceiling" + ("" if never else f"; retry in {soonest:.1f} s"),
            client="",
            retry_after_s=None if never else soonest,
            permanent=never,
            gateway_wide=True,
        )
    reopens = [r.breaker.reopens_in() for r in ordered if r.breaker is not None]
    return UpstreamUnreachable(
        f"every upstream that may serve model '{model}' is failing (its circuit is "
        f"open); the first is tried again in {min(reopens, default=0):.0f} s",
        generated_nothing=True,
    )
