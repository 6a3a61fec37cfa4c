"""What a model rule is: the operations, and the value classes of one model's rules
and of a shutdown OpenAI announced. The values themselves are in :mod:`.table`.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass

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
