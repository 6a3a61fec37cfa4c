"""The model table: every model OpenAI's Images API has had, with its rules and, for
the retired ones, its shutdown (the only place in the code that knows a shutdown
date). When OpenAI ships, changes or retires a model, this is the file to edit.
"""

from __future__ import annotations

import datetime
from dataclasses import replace

from imagegate_server.models.rules import MB, FlexibleSizeRule, Lifecycle, ModelRules, Operation

# Parameters every GPT image model accepts on generations; the rest are added per model.
_GPT_GENERATION = frozenset(
    {
        "prompt",
        "model",
        "n",
        "size",
        "quality",
        "background",
        "moderation",
        "output_compression",
        "output_format",
        "partial_images",
        "stream",
        "user",
        "safety_identifier",
    }
)
_GPT_EDIT_EXTRA = frozenset({"image", "mask", "input_fidelity"})
# The 2.5 family (and, by assumption, 2.6) adds planning, GIF/SVG output and markup.
_NEWER_GENERATION_EXTRA = frozenset({"complexity", "frame_count", "frame_duration_ms", "svg"})
_STANDARD_GPT_SIZES = frozenset({"auto", "1024x1024", "1536x1024", "1024x1536"})
_GPT_QUALITIES = frozenset({"auto", "low", "medium", "high"})
_GPT_FORMATS = frozenset({"png", "jpeg", "webp"})


def _gpt(
    name: str,
    *,
    flexible: bool = False,
    newer: bool = False,
    input_fidelities: frozenset[str] = frozenset({"low", "high"}),
    lifecycle: Lifecycle | None = None,
) -> ModelRules:
    generation = _GPT_GENERATION | (_NEWER_GENERATION_EXTRA if newer else frozenset())
    edit = generation | _GPT_EDIT_EXTRA | (frozenset({"markup"}) if newer else frozenset())
    if not input_fidelities:
        edit -= {"input_fidelity"}
    return ModelRules(
        name=name,
        gpt_image=True,
        prompt_max_chars=32000,
        operations=frozenset({Operation.GENERATION, Operation.EDIT}),
        generation_params=generation,
        edit_params=edit,
        sizes=_STANDARD_GPT_SIZES,
        flexible_size=FlexibleSizeRule() if flexible else None,
        qualities=_GPT_QUALITIES | (frozenset({"xhigh", "max"}) if newer else frozenset()),
        output_formats=_GPT_FORMATS | (frozenset({"gif", "svg"}) if newer else frozenset()),
        input_fidelities=input_fidelities,
        max_input_images=16,
        input_image_formats=frozenset({"png", "jpeg", "webp"}),
        image_max_bytes=50 * MB,
        mask_max_bytes=4 * MB,
        json_edits=True,
        default_size="auto",
        lifecycle=lifecycle,
    )


# OpenAI's deprecations page (research/openai-images.md and tenancy.md section 2):
# DALL-E 2 and 3 were removed on 2026-05-12 in favour of gpt-image-1; gpt-image-1 shut
# down on 2026-10-23; gpt-image-1.5, gpt-image-1-mini and chatgpt-image-latest shut
# down on 2026-12-01 (announced 2026-06-02), all replaced by gpt-image-2.
LIFECYCLE_TABLE_DATE = datetime.date(2026, 12, 1)
"""The day the lifecycles below were last checked against OpenAI's announcements."""
_DALL_E_SHUTDOWN = Lifecycle(datetime.date(2026, 5, 12), replacement="gpt-image-1")
_GPT_IMAGE_1_SHUTDOWN = Lifecycle(datetime.date(2026, 10, 23), replacement="gpt-image-2")
_GPT_IMAGE_1_5_SHUTDOWN = Lifecycle(datetime.date(2026, 12, 1), replacement="gpt-image-2")

# safety_identifier (openai 3.57) supersedes user on generations and edits, for every
# model: it names the end user, not a model feature.
_DALL_E_2_GENERATION = frozenset(
    {"prompt", "model", "n", "size", "quality", "response_format", "user", "safety_identifier"}
)

_DALL_E_2 = ModelRules(
    name="dall-e-2",
    gpt_image=False,
    prompt_max_chars=1000,
    operations=frozenset(Operation),
    generation_params=_DALL_E_2_GENERATION,
    # Spec, CreateImageEditRequest.quality: `standard` (a DALL-E value) is in the enum.
    edit_params=_DALL_E_2_GENERATION | {"image", "mask"},
    variation_params=frozenset({"image", "model", "n", "size", "response_format", "user"}),
    sizes=frozenset({"256x256", "512x512", "1024x1024"}),
    qualities=frozenset({"auto", "standard"}),
    square_png_input=True,
    default_response_format="url",
    lifecycle=_DALL_E_SHUTDOWN,
)

_DALL_E_3 = ModelRules(
    name="dall-e-3",
    gpt_image=False,
    prompt_max_chars=4000,
    operations=frozenset({Operation.GENERATION}),
    generation_params=frozenset(
        {"prompt", "model", "n", "size", "quality", "response_format", "style", "user"}
        | {"safety_identifier"}
    ),
    n_max=1,
    sizes=frozenset({"1024x1024", "1792x1024", "1024x1792"}),
    qualities=frozenset({"auto", "standard", "hd"}),
    styles=frozenset({"vivid", "natural"}),
    default_response_format="url",
    lifecycle=_DALL_E_SHUTDOWN,
)

MODEL_RULES: dict[str, ModelRules] = {
    rules.name: rules
    for rules in (
        _DALL_E_2,
        _DALL_E_3,
        _gpt("gpt-image-1", lifecycle=_GPT_IMAGE_1_SHUTDOWN),
        _gpt(
            "gpt-image-1-mini",
            input_fidelities=frozenset({"low"}),
            lifecycle=_GPT_IMAGE_1_5_SHUTDOWN,
        ),
        _gpt("gpt-image-1.5", lifecycle=_GPT_IMAGE_1_5_SHUTDOWN),
        _gpt("gpt-image-1.5-2025-12-16", lifecycle=_GPT_IMAGE_1_5_SHUTDOWN),
        _gpt("chatgpt-image-latest", lifecycle=_GPT_IMAGE_1_5_SHUTDOWN),
        # gpt-image-2: "For gpt-image-2, omit this parameter" (input_fidelity).
        _gpt("gpt-image-2", flexible=True, input_fidelities=frozenset()),
        _gpt("gpt-image-2-2026-04-21", flexible=True, input_fidelities=frozenset()),
        _gpt("gpt-image-2.5-sunburst", flexible=True, newer=True),
        _gpt("gpt-image-2.5-sunburst-2026-09-08", flexible=True, newer=True),
        _gpt("gpt-image-2.5-flare", flexible=True, newer=True),
        _gpt("gpt-image-2.5-flare-2026-09-08", flexible=True, newer=True),
        # The SDK lists 2.6 without details; assume it accepts what 2.5 does.
        _gpt("gpt-image-2.6-sunburst", flexible=True, newer=True),
        _gpt("gpt-image-2.6-flare", flexible=True, newer=True),
    )
}

GPT_LIKE_DEFAULT: ModelRules = replace(MODEL_RULES["gpt-image-2.5-sunburst"], name="")
"""Rules the emulator applies to a model it serves beyond this table (its
``extra_models``): those of the most permissive GPT model."""

NEWER_GPT_ONLY_GENERATION_PARAMS = _NEWER_GENERATION_EXTRA
# Parameters no DALL-E model accepts: using one makes the spec's default a GPT model.
GPT_ONLY_GENERATION_PARAMS = (_GPT_GENERATION | NEWER_GPT_ONLY_GENERATION_PARAMS) - (
    _DALL_E_2.generation_params | _DALL_E_3.generation_params
)


def rules_for(model: str) -> ModelRules | None:
    """The rules of a known model, or None for a model the table does not know."""
    return MODEL_RULES.get(model)
