"""Per-model rules of OpenAI's Images API, as one data table.

The gateway (before going upstream) and the emulator (as the upstream) read the same
table, so a rule lives in exactly one place. Models churn faster than the spec: the
live API retired ``dall-e-2``/``dall-e-3``/``gpt-image-1`` and, on 2026-12-01, the
gpt-image-1.5 generation, while the spec still lists them, and added the 2.5/2.6
families that only the SDK knows. Retired models stay in the table because the spec
(and OpenAI-compatible servers such as the emulator) still accept them; each carries
its :class:`Lifecycle`, the only place in the code that knows a shutdown date. A
model missing from the table is *unknown*: the gateway passes it through
unvalidated; the emulator refuses it as OpenAI does (404 ``model_not_found``) unless
it was told to serve it, and then judges it like a GPT image model
(:data:`GPT_LIKE_DEFAULT`).

Where the spec and SDK are silent about a new model (for example whether the 2.6
family accepts ``input_fidelity``), the table errs on the side of accepting: a
local rejection of a request OpenAI would have served is worse than a round trip.

Modules: :mod:`.rules` (what a rule is: :class:`ModelRules`, :class:`Lifecycle`,
:class:`Operation`), :mod:`.table` (the table itself: every model and its shutdown),
:mod:`.defaults` (the model a request without one means), :mod:`.lifecycle`
(whether OpenAI still serves a model, and what replaces it) and :mod:`.sizes`
(``WxH`` parsing and each model's size rule). Import from this package.
"""

from imagegate_server.models.defaults import resolve_model
from imagegate_server.models.lifecycle import replacement_for, retired
from imagegate_server.models.rules import MB, FlexibleSizeRule, Lifecycle, ModelRules, Operation
from imagegate_server.models.sizes import parse_size, size_allowed
from imagegate_server.models.table import (
    GPT_LIKE_DEFAULT,
    LIFECYCLE_TABLE_DATE,
    MODEL_RULES,
    rules_for,
)

__all__ = [
    "GPT_LIKE_DEFAULT",
    "LIFECYCLE_TABLE_DATE",
    "MB",
    "MODEL_RULES",
    "FlexibleSizeRule",
    "Lifecycle",
    "ModelRules",
    "Operation",
    "parse_size",
    "replacement_for",
    "resolve_model",
    "retired",
    "rules_for",
    "size_allowed",
]
