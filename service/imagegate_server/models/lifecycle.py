"""Whether OpenAI still serves a model on a given day, and what to use instead.

The shutdown dates are data of :mod:`.table`; these are the questions the gateway
asks of them.
"""

from __future__ import annotations

import datetime

from imagegate_server.models.rules import Lifecycle
from imagegate_server.models.table import MODEL_RULES


def retired(model: str, today: datetime.date) -> Lifecycle | None:
    """The model's lifecycle if OpenAI no longer serves it on ``today`` (UTC), else None."""
    rules = MODEL_RULES.get(model)
    lifecycle = rules.lifecycle if rules else None
    return lifecycle if lifecycle is not None and today >= lifecycle.shutdown else None


def replacement_for(model: str, today: datetime.date) -> str:
    """The model to use instead of a retired one: its replacement, followed while that
    is retired too (dall-e-3 -> gpt-image-1 -> gpt-image-2)."""
    seen = {model}
    while (lifecycle := retired(model, today)) is not None and lifecycle.replacement not in seen:
        model = lifecycle.replacement
        seen.add(model)
    return model
