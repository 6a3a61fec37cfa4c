"""Reservation estimates: upper-ish bounds of what calls settle at, not worst cases."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import openai
import pytest
from support.images import png

from imagegate_server.pricing import PriceTable, TokenUsage
from imagegate_server.pricing.profiles import output_tokens_per_image

Quality = Literal["low", "medium", "high"]
Size = Literal["1024x1024", "1024x1536", "1536x1024"]
QUALITIES: tuple[Quality, ...] = ("low", "medium", "high")
STANDARD_SIZES: tuple[Size, ...] = ("1024x1024", "1024x1536", "1536x1024")
PROMPT = "a lighthouse on a cliff at dusk, waves below, oil painting"

# OpenAI's published per-image prices in USD (research/tenancy.md 2.1 and the
# gpt-image-2 examples of OpenAI's image-generation guide), by quality, for
# 1024x1024 / 1024x1536 / 1536x1024.
PUBLISHED = {
    "gpt-image-1": {
        "low": (0.011, 0.016, 0.016),
        "medium": (0.042, 0.063, 0.063),
        "high": (0.167, 0.25, 0.25),
    },
    "gpt-image-1-mini": {
        "low": (0.005, 0.006, 0.006),
        "medium": (0.011, 0.015, 0.015),
        "high": (0.036, 0.052, 0.052),
    },
    "gpt-image-1.5": {
        "low": (0.009, 0.013, 0.013),
        "medium": (0.034, 0.05, 0.05),
        "high": (0.133, 0.20, 0.20),
    },
    "gpt-image-2": {
        "low": (0.006, 0.005, 0.005),
        "medium": (0.053, 0.041, 0.041),
        "high": (0.211, 0.165, 0.165),
    },
}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_one_image_estimates_match_openais_published_prices(table: PriceTable, model: str) -> None:
    for quality, prices in PUBLISHED[model].items():
        for size, published in zip(STANDARD_SIZES, prices, strict=True):
            estimate = table.estimate_micros(model, quality=quality, size=size, n=1)
            assert estimate is not None
            # Published prices are rounded (0.25 for 0.2483): within 2%, or half a
            # tenth of a cent for the smallest.
            tolerance = max(0.02 * published, 0.0005)
            assert abs(estimate / 1e6 - published) <= tolerance, (quality, size)


def test_the_gpt_image_2_formula_reproduces_its_published_token_counts(
    table: PriceTable,
) -> None:
    profile = table.output_tokens["gpt-image-2"]
    counts = {
        (q, s): output_tokens_per_image(profile, table.estimates, quality=q, size=s)
        for q in QUALITIES
        for s in ("1024x1024", "1024x1536")
    }
    # At $30/M these are $0.00588, $0.05268, $0.21072 (published $0.006, $0.053,
    # $0.211) and $0.00474, $0.04116, $0.16464 (published $0.005, $0.041, $0.165).
    assert counts == {
        ("low", "1024x1024"): 196,
        ("medium", "1024x1024"): 1756,
        ("high", "1024x1024"): 7024,
        ("low", "1024x1536"): 158,
        ("medium", "1024x1536"): 1372,
        ("high", "1024x1536"): 5488,
    }
    # Orientation does not matter, and it takes any size.
    assert (
        output_tokens_per_image(profile, table.estimates, quality="high", size="1536x1024")
        == counts[("high", "1024x1536")]
    )
    big = output_tokens_per_image(profile, table.estimates, quality="high", size="3840x2160")
    assert big > counts[("high", "1024x1024")]


def test_custom_sizes_scale_a_table_profile_by_pixel_area(table: PriceTable) -> None:
    profile = table.output_tokens["gpt-image-1"]

    def tokens(size: str) -> int:
        return output_tokens_per_image(profile, table.estimates, quality="low", size=size)

    assert tokens("2048x2048") == 4 * 272
    assert tokens("512x512") == 272 // 4
    assert tokens("1000x1000") == -(-272 * 1000 * 1000 // (1024 * 1024))  # rounded up
    # A listed size takes its entry, whatever the area rule says.
    mini = table.output_tokens["gpt-image-1-mini"]
    assert output_tokens_per_image(mini, table.estimates, quality="low", size="1024x1536") == 750


def test_auto_and_unset_quality_are_estimated_as_high(table: PriceTable) -> None:
    for model in ("gpt-image-1", "gpt-image-2"):
        high = table.estimate_micros(model, quality="high", size="1024x1024", n=1)
        assert table.estimate_micros(model, quality="auto", size="1024x1024", n=1) == high
        assert table.estimate_micros(model, quality=None, size="1024x1024", n=1) == high
        # An unknown quality takes the dearest the profile knows (max, 4x high here).
        dearest = table.estimate_micros(model, quality="max", size="1024x1024", n=1)
        assert table.estimate_micros(model, quality="ultra", size="1024x1024", n=1) == dearest


def test_auto_size_is_the_dearest_standard_size(table: PriceTable) -> None:
    for model in ("gpt-image-1", "gpt-image-2"):
        by_size = [
            table.estimate_micros(model, quality="medium", size=size, n=1)
            for size in STANDARD_SIZES
        ]
        for size in ("auto", None, "", "huge"):
            auto = table.estimate_micros(model, quality="medium", size=size, n=1)
            assert auto == max(s for s in by_size if s is not None)


def test_estimate_parts_add_up(table: PriceTable) -> None:
    def estimate(**kwargs: object) -> int:
        value = table.estimate_micros(
            "gpt-image-1",
            quality="low",
            size="1024x1024",
            **kwargs,  # type: ignore[arg-type]
        )
        assert value is not None
        return value

    base = estimate(n=1)
    assert estimate(n=3) - estimate(n=1) == 2 * 272 * 40  # n x the image output only
    # 100 output tokens per partial image per image, at $40/M.
    assert estimate(n=2, partial_images=3) - estimate(n=2) == 2 * 3 * 100 * 40
    # Prompt characters / 4, rounded up, at $5/M.
    assert estimate(n=1, prompt_chars=41) - base == 11 * 5
    # Input images at $10/M: the per-image estimate, plus the high-fidelity extra.
    per_input = table.estimates.input_image_tokens
    assert estimate(n=1, input_images=2) - base == 2 * per_input * 10
    extra = table.estimates.high_fidelity_extra_input_image_tokens
    assert (
        estimate(n=1, input_images=2, input_fidelity="high") - base == 2 * (per_input + extra) * 10
    )


def test_dall_e_estimates_are_their_per_image_prices(table: PriceTable) -> None:
    assert table.estimate_micros("dall-e-3", quality="hd", size="1024x1792", n=1) == 120_000
    assert table.estimate_micros("dall-e-2", quality=None, size="512x512", n=4) == 4 * 18_000


def test_reserve_max_is_the_dearest_model_for_the_call(table: PriceTable) -> None:
    call = {"quality": "medium", "size": "1024x1024", "n": 2, "prompt_chars": 200}
    dearest = table.max_estimate_micros(**call)  # type: ignore[arg-type]
    every = [table.estimate_micros(model, **call) for model in table.models]  # type: ignore[arg-type]
    assert dearest == max(e for e in every if e is not None)
    # For a call no DALL-E size fits, the GPT models still bound it.
    wide = table.max_estimate_micros(quality="high", size="3840x2160", n=1)
    assert wide is not None
    assert wide >= (
        table.estimate_micros("gpt-image-2", quality="high", size="3840x2160", n=1) or 0
    )


@pytest.mark.parametrize("bad", [{"n": -1}, {"prompt_chars": -5}, {"partial_images": -1}])
def test_negative_counts_are_programming_errors(table: PriceTable, bad: dict[str, int]) -> None:
    call = {"quality": "low", "size": "1024x1024", "n": 1, **bad}
    with pytest.raises(ValueError):
        table.estimate_micros("gpt-image-1", **call)  # type: ignore[arg-type]


# -- against the emulator, which counts output tokens by each model's profile ---------
# The emulator takes its output-token counts from the same table's profiles, so these
# check what the estimate adds on top: text and image input, n, and the dear-side
# choices it makes for what a call leaves open.


def usage_of(response: object) -> TokenUsage:
    usage = getattr(response, "usage", None)
    assert usage is not None
    return TokenUsage.from_openai(usage.model_dump())


@pytest.mark.parametrize(
    "model", ["gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini", "gpt-image-2"]
)
async def test_estimates_bound_settled_costs_within_2x(
    client: openai.AsyncOpenAI, table: PriceTable, model: str
) -> None:
    ratios: list[Decimal] = []
    for quality in QUALITIES:
        for size in STANDARD_SIZES:
            for n in (1, 3):
                response = await client.images.generate(
                    model=model,
                    prompt=PROMPT,
                    quality=quality,
                    size=size,
                    n=n,
                )
                settled = table.cost_micros(
                    model, usage_of(response), images=n, size=size, quality=quality
                )
                estimate = table.estimate_micros(
                    model, quality=quality, size=size, n=n, prompt_chars=len(PROMPT)
                )
                assert settled is not None and estimate is not None
                assert settled <= estimate <= 2 * settled, (quality, size, n)
                ratios.append(Decimal(estimate) / settled)
    # Not the "reserve $0.10 for a $0.011 call" kind of bound (LiteLLM PR #40002).
    assert max(ratios) < Decimal("1.1")


@pytest.mark.parametrize("quality", QUALITIES)
async def test_edit_estimates_bound_settled_costs_within_2x(
    client: openai.AsyncOpenAI, table: PriceTable, quality: Quality
) -> None:
    images = [
        ("a.png", png(1024, 1024, mode="RGB"), "image/png"),
        ("b.png", png(1536, 1024, mode="RGB"), "image/png"),
    ]
    for size in STANDARD_SIZES:
        response = await client.images.edit(
            model="gpt-image-1",
            image=images,
            prompt=PROMPT,
            quality=quality,
            size=size,
        )
        settled = table.cost_micros(
            "gpt-image-1", usage_of(response), images=1, size=size, quality=quality
        )
        estimate = table.estimate_micros(
            "gpt-image-1",
            quality=quality,
            size=size,
            n=1,
            prompt_chars=len(PROMPT),
            input_images=len(images),
        )
        assert settled is not None and estimate is not None
        assert settled <= estimate <= 2 * settled, size


async def test_auto_quality_estimates_bound_what_the_emulator_settles(
    client: openai.AsyncOpenAI, table: PriceTable
) -> None:
    # The emulator renders auto as medium; the estimate assumes high (see prices.toml),
    # so it is an upper bound here, deliberately above 2x.
    response = await client.images.generate(model="gpt-image-1", prompt=PROMPT, quality="auto")
    settled = table.cost_micros(
        "gpt-image-1", usage_of(response), images=1, size=None, quality="auto"
    )
    estimate = table.estimate_micros(
        "gpt-image-1", quality="auto", size="auto", n=1, prompt_chars=len(PROMPT)
    )
    assert settled is not None and estimate is not None
    assert settled < estimate
