"""The price table: which entry prices a model, what a call cost, what to reserve.

Matching a model name, first hit wins:

1. the exact name: a model entry, else an alias (which names a model entry);
2. a dated snapshot (``gpt-image-2-2026-04-21``, ``gpt-image-2.5-sunburst-2026-09-08``)
   tried as its base name (``gpt-image-2``, ``gpt-image-2.5-sunburst``), exactly;
3. the longest glob pattern among model and alias keys (``gpt-image-2.6-*``) that
   matches the name or its base (ties: the alphabetically first pattern).

Anything else has no price (None): the gateway's ``IMAGEGATE_UNPRICED_MODELS``
policy decides, never a silent zero.
"""

from __future__ import annotations

import datetime
import enum
import fnmatch
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from imagegate_server.pricing.entries import ModelPrices, PerImagePrices, TokenPrices
from imagegate_server.pricing.estimates import Estimates
from imagegate_server.pricing.fields import is_pattern
from imagegate_server.pricing.money import round_cost, round_estimate
from imagegate_server.pricing.profiles import OutputTokenProfile, output_tokens_per_image
from imagegate_server.pricing.usage import TokenUsage

_SNAPSHOT = re.compile(r"(.+)-[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AUTO = ("", "auto")


class CostBasis(enum.Enum):
    """Where a call's cost came from."""

    USAGE = "usage"
    """The upstream's reported token usage (GPT image models)."""
    PER_IMAGE = "per_image"
    """The per-image price times the images returned (DALL-E models)."""
    ESTIMATE = "estimate"
    """A GPT image model answered without usage: the call's estimate stands in."""


@dataclass(frozen=True)
class CallCost:
    micros: int
    """Whole micro-dollars (exact sum, rounded half up once)."""
    basis: CostBasis
    priced_as: str
    """The table entry that priced the model (for logs: an alias or snapshot shows
    which entry it fell back to)."""


@dataclass(frozen=True)
class PriceTable:
    """The merged price table (built-in plus operator file); immutable, so one table
    serves every call without locks. Build it with :func:`~.loading.load_price_table`."""

    version: datetime.date
    """The built-in table's date."""
    override_version: datetime.date | None
    """The operator file's ``version``, when it has one."""
    models: Mapping[str, ModelPrices]
    aliases: Mapping[str, str]
    output_tokens: Mapping[str, OutputTokenProfile]
    estimates: Estimates

    @property
    def version_label(self) -> str:
        """``2026-12-01``, or ``2026-12-01+2027-01-15`` with a dated operator file."""
        label = self.version.isoformat()
        if self.override_version is not None:
            label += f"+{self.override_version.isoformat()}"
        return label

    # -- matching -----------------------------------------------------------------

    def resolve(self, model: str) -> str | None:
        """The key of the model entry that prices ``model``, or None for no price."""
        exact = self._exact(model)
        if exact is not None:
            return exact
        snapshot = _SNAPSHOT.fullmatch(model)
        base = snapshot[1] if snapshot else None
        if base is not None:
            exact = self._exact(base)
            if exact is not None:
                return exact
        names = (model,) if base is None else (model, base)
        for pattern in self._patterns:
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return pattern if pattern in self.models else self.aliases[pattern]
        return None

    @functools.cached_property
    def _patterns(self) -> tuple[str, ...]:
        """Pattern keys, longest first (then alphabetically)."""
        keys = [key for key in (*self.models, *self.aliases) if is_pattern(key)]
        return tuple(sorted(keys, key=lambda key: (-len(key), key)))

    def prices(self, model: str) -> ModelPrices | None:
        key = self.resolve(model)
        return None if key is None else self.models[key]

    def _exact(self, name: str) -> str | None:
        if name in self.models:
            return name
        return self.aliases.get(name)

    # -- settled cost -------------------------------------------------------------

    def cost(
        self,
        model: str,
        usage: TokenUsage | None,
        *,
        images: int,
        size: str | None,
        quality: str | None,
        prompt_chars: int = 0,
        input_images: int = 0,
        partial_images: int = 0,
        input_fidelity: str | None = None,
    ) -> CallCost | None:
        """What a finished call cost; None when the model has no price.

        GPT image models are priced from ``usage`` alone: it covers the whole call,
        so ``images`` does not multiply it. DALL-E models report no usage and are
        priced per image: ``images`` (the images returned) x the price for
        ``quality`` and ``size``. A GPT image model that answered without usage is
        priced by :meth:`estimate_micros` for ``images`` images and the other
        arguments (which matter only then), with basis ``ESTIMATE``.
        """
        _check_counts(images=images)
        key = self.resolve(model)
        if key is None:
            return None
        entry = self.models[key]
        if isinstance(entry, PerImagePrices):
            micros = images * _per_image_micros(entry, quality, size)
            return CallCost(micros, CostBasis.PER_IMAGE, key)
        if usage is None:
            micros = self._estimate(
                entry,
                quality=quality,
                size=size,
                n=images,
                prompt_chars=prompt_chars,
                input_images=input_images,
                partial_images=partial_images,
                input_fidelity=input_fidelity,
            )
            return CallCost(micros, CostBasis.ESTIMATE, key)
        return CallCost(round_cost(_usage_micros(entry, usage)), CostBasis.USAGE, key)

    def cost_micros(
        self,
        model: str,
        usage: TokenUsage | None,
        *,
        images: int,
        size: str | None,
        quality: str | None,
    ) -> int | None:
        """:meth:`cost` in micro-dollars only (None: no price)."""
        cost = self.cost(model, usage, images=images, size=size, quality=quality)
        return None if cost is None else cost.micros

    # -- estimates ----------------------------------------------------------------

    def estimate_micros(
        self,
        model: str,
        *,
        quality: str | None,
        size: str | None,
        n: int,
        prompt_chars: int = 0,
        input_images: int = 0,
        partial_images: int = 0,
        input_fidelity: str | None = None,
    ) -> int | None:
        """What to reserve before the call; None when the model has no price.

        GPT image models: ``n x`` (the output tokens of one image for ``quality`` and
        ``size`` + ``partial_images x`` the partial-image tokens) at the image-output
        rate, plus ``prompt_chars / chars_per_text_token`` + the prompt overhead at
        the text-input rate, plus ``input_images x`` the input-image estimate (plus
        the high-fidelity extra when ``input_fidelity == "high"``) at the
        image-input rate; rounded up. DALL-E models: ``n x`` the per-image price.
        """
        key = self.resolve(model)
        if key is None:
            return None
        return self._estimate(
            self.models[key],
            quality=quality,
            size=size,
            n=n,
            prompt_chars=prompt_chars,
            input_images=input_images,
            partial_images=partial_images,
            input_fidelity=input_fidelity,
        )

    def max_estimate_micros(
        self,
        *,
        quality: str | None,
        size: str | None,
        n: int,
        prompt_chars: int = 0,
        input_images: int = 0,
        partial_images: int = 0,
        input_fidelity: str | None = None,
    ) -> int | None:
        """The estimate of the table's dearest model for this call (the
        ``reserve_max`` policy for models the table cannot price); None only for a
        table without models."""
        estimates = [
            self._estimate(
                entry,
                quality=quality,
                size=size,
                n=n,
                prompt_chars=prompt_chars,
                input_images=input_images,
                partial_images=partial_images,
                input_fidelity=input_fidelity,
            )
            for entry in self.models.values()
        ]
        return max(estimates, default=None)

    def _estimate(
        self,
        entry: ModelPrices,
        *,
        quality: str | None,
        size: str | None,
        n: int,
        prompt_chars: int,
        input_images: int,
        partial_images: int,
        input_fidelity: str | None,
    ) -> int:
        _check_counts(
            n=n, prompt_chars=prompt_chars, input_images=input_images, partial=partial_images
        )
        if isinstance(entry, PerImagePrices):
            return n * _per_image_micros(entry, quality, size)
        est = self.estimates
        per_image = output_tokens_per_image(
            self.output_tokens[entry.output_tokens], est, quality=quality, size=size
        )
        image_out = n * (per_image + partial_images * est.partial_image_output_tokens)
        text_in = -(-prompt_chars // est.chars_per_text_token) + est.prompt_overhead_text_tokens
        per_input = est.input_image_tokens
        if input_fidelity == "high":
            per_input += est.high_fidelity_extra_input_image_tokens
        usage = TokenUsage(text_in=text_in, image_in=input_images * per_input, image_out=image_out)
        return round_estimate(_usage_micros(entry, usage))


def _usage_micros(entry: TokenPrices, usage: TokenUsage) -> Decimal:
    """The exact cost of ``usage`` (USD per 1M tokens = micro-dollars per token)."""
    text_out_price = entry.image_out if entry.text_out is None else entry.text_out
    return (
        usage.text_in * entry.text_in
        + usage.image_in * entry.image_in
        + usage.image_out * entry.image_out
        + usage.text_out * text_out_price
    )


def _per_image_micros(entry: PerImagePrices, quality: str | None, size: str | None) -> int:
    """The price of one image. Quality unset or ``auto``: the entry's default; a
    quality it does not list: its dearest. A size it does not list (``auto``
    included, which DALL-E models do not take): the dearest size of the quality."""
    if quality is None or quality in _AUTO:
        quality = entry.default_quality
    qualities = [quality] if quality in entry.per_image else list(entry.per_image)
    if size is None or size in _AUTO:
        size = entry.default_size
    listed = [entry.per_image[q][size] for q in qualities if size in entry.per_image[q]]
    if listed:
        return max(listed)
    return max(price for q in qualities for price in entry.per_image[q].values())


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0")
