"""Per-model rules of OpenAI's Images API, as one data table.

The gateway (before going upstream) and the emulator (as the upstream) read the same
table, so a rule lives in exactly one place. Models churn faster than the spec: the
live API retired ``dall-e-2``/``dall-e-3``/``gpt-image-1`` and, on 2026-12-01, the
gpt-image-1.5 generation, while the spec still lists them, and added the 2.5/2.6
families that only the SDK knows. Retired models stay in the table because the spec
(and OpenAI-compatible servers such as the emulator) still accept them; each carries
its :class:`Lifecycle`, the only place in the code that knows a shutdown date. A
model missing from the table is *unknown*: the gateway passes it through
unvalidated; the emulator treats it like a GPT image model (:data:`GPT_LIKE_DEFAULT`).

Where the spec and SDK are silent about a new model (for example whether the 2.6
family accepts ``input_fidelity``), the table errs on the side of accepting: a
local rejection of a request OpenAI would have served is worse than a round trip.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

MB = 1024 * 1024


class Operation(enum.Enum):
    GENERATION = "generation"
    EDIT = "edit"
    VARIATION = "variation"


@dataclass(frozen=True)
class FlexibleSizeRule:
    """``WIDTHxHEIGHT`` sizes of the gpt-image-2 family (spec: CreateImageRequest.size)."""

    multiple_of: int = 16
    """Width and height must both be divisible by this."""
    max_aspect_ratio: float = 3.0
    """Long edge / short edge must be at most this (1:3 to 3:1)."""
    max_edge: int = 3840
    """The largest supported resolution is 3840x2160."""
    max_pixels: int = 3840 * 2160


@dataclass(frozen=True)
class Lifecycle:
    """A shutdown OpenAI announced for a model (its deprecations page)."""

    shutdown: datetime.date
    """The first UTC day on which OpenAI no longer serves the model."""
    replacement: str
    """The model OpenAI names as its replacement (which may itself be retired later:
    see :func:`replacement_for`)."""


@dataclass(frozen=True)
class ModelRules:
    """What one model accepts. Every field is a rule the spec or SDK states."""

    name: str
    gpt_image: bool
    """GPT image models return base64 only, report usage, and accept the GPT-only params."""
    prompt_max_chars: int
    operations: frozenset[Operation]
    generation_params: frozenset[str]
    """Parameters accepted by POST /images/generations (others are ``unknown_parameter``)."""
    edit_params: frozenset[str] = frozenset()
    variation_params: frozenset[str] = frozenset()
    n_max: int = 10
    sizes: frozenset[str] = frozenset()
    """Allowed literal sizes (``auto`` included when the model sizes automatically)."""
    flexible_size: FlexibleSizeRule | None = None
    """When set, any ``WxH`` satisfying the rule is allowed as well."""
    qualities: frozenset[str] = frozenset({"auto"})
    output_formats: frozenset[str] = frozenset()
    styles: frozenset[str] = frozenset()
    input_fidelities: frozenset[str] = frozenset()
    max_input_images: int = 1
    input_image_formats: frozenset[str] = frozenset({"png"})
    """Sniffed formats allowed for ``image`` uploads."""
    image_max_bytes: int = 4 * MB
    mask_max_bytes: int = 4 * MB
    square_png_input: bool = False
    """dall-e-2 wants one square PNG (edits and variations)."""
    json_edits: bool = False
    """Edits may use the JSON body (EditImageBodyJsonParam); GPT image models only."""
    default_size: str = "1024x1024"
    default_response_format: str | None = None
    """``url`` for DALL-E models; None for GPT image models (they never take it)."""
    lifecycle: Lifecycle | None = None
    """Set when OpenAI announced a shutdown; None for models it serves for now."""


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
"""Rules the emulator applies to a model it does not know (the most permissive GPT model)."""

# Spec defaults when the request omits ``model``.
DEFAULT_GENERATION_MODEL = "dall-e-2"
DEFAULT_GPT_GENERATION_MODEL = "gpt-image-1.5"
"""Spec: generations default to dall-e-2 *unless a GPT-only parameter is used*."""
DEFAULT_NEWER_GPT_GENERATION_MODEL = "gpt-image-2.5-sunburst"
"""Generations that use a parameter only the 2.5/2.6 family accepts (``complexity``,
GIF/SVG settings) default to the model the SDK names as gpt-image-1's successor:
defaulting to gpt-image-1.5 would reject those very parameters as unknown."""
DEFAULT_EDIT_MODEL = "gpt-image-1.5"
DEFAULT_VARIATION_MODEL = "dall-e-2"

NEWER_GPT_ONLY_GENERATION_PARAMS = _NEWER_GENERATION_EXTRA
# Parameters no DALL-E model accepts: using one makes the spec's default a GPT model.
GPT_ONLY_GENERATION_PARAMS = (_GPT_GENERATION | NEWER_GPT_ONLY_GENERATION_PARAMS) - (
    _DALL_E_2.generation_params | _DALL_E_3.generation_params
)


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


def rules_for(model: str) -> ModelRules | None:
    """The rules of a known model, or None for a model the table does not know."""
    return MODEL_RULES.get(model)


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


# ASCII digits only: str.isdigit() also accepts superscripts and circled digits (which
# int() then refuses) and Arabic-Indic digits (which int() reads as 1024). At most six
# digits a side keeps absurd sizes cheap to reject.
_SIZE = re.compile(r"([0-9]{1,6})x([0-9]{1,6})")


def parse_size(size: str) -> tuple[int, int] | None:
    """``"1536x1024"`` -> (1536, 1024); None for ``auto`` or anything malformed."""
    match = _SIZE.fullmatch(size)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def size_allowed(rules: ModelRules, size: str) -> bool:
    """Whether ``size`` is a literal size of the model or satisfies its WxH rule."""
    if size in rules.sizes:
        return True
    flexible = rules.flexible_size
    dims = parse_size(size)
    if flexible is None or dims is None:
        return False
    width, height = dims
    if width <= 0 or height <= 0:
        return False
    if width % flexible.multiple_of or height % flexible.multiple_of:
        return False
    if max(width, height) > flexible.max_edge or width * height > flexible.max_pixels:
        return False
    return max(width, height) / min(width, height) <= flexible.max_aspect_ratio
