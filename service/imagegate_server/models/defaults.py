"""The model a request means when it names none: the spec's defaults, as OpenAI and
the emulator apply them.
"""

from __future__ import annotations

from collections.abc import Mapping

from imagegate_server.models.rules import Operation
from imagegate_server.models.table import (
    GPT_ONLY_GENERATION_PARAMS,
    NEWER_GPT_ONLY_GENERATION_PARAMS,
)

DEFAULT_GENERATION_MODEL = "dall-e-2"
DEFAULT_GPT_GENERATION_MODEL = "gpt-image-1.5"
"""Spec: generations default to dall-e-2 *unless a GPT-only parameter is used*."""
DEFAULT_NEWER_GPT_GENERATION_MODEL = "gpt-image-2.5-sunburst"
"""Generations that use a parameter only the 2.5/2.6 family accepts (``complexity``,
GIF/SVG settings) default to the model the SDK names as gpt-image-1's successor:
defaulting to gpt-image-1.5 would reject those very parameters as unknown."""
DEFAULT_EDIT_MODEL = "gpt-image-1.5"
DEFAULT_VARIATION_MODEL = "dall-e-2"


def resolve_model(operation: Operation, params: Mapping[str, object]) -> str | None:
    """The model a request means (the spec's defaults applied, as OpenAI and the
    emulator apply them); None if ``model`` is not a string."""
    model = params.get("model")
    if model is None:
        if operation is Operation.GENERATION:
            if any(params.get(name) is not None for name in NEWER_GPT_ONLY_GENERATION_PARAMS):
                return DEFAULT_NEWER_GPT_GENERATION_MODEL
            if any(params.get(name) is not None for name in GPT_ONLY_GENERATION_PARAMS):
                return DEFAULT_GPT_GENERATION_MODEL
            return DEFAULT_GENERATION_MODEL
        return DEFAULT_EDIT_MODEL if operation is Operation.EDIT else DEFAULT_VARIATION_MODEL
    return model if isinstance(model, str) else None
