"""Properties of costs and estimates over generated usages and calls."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from imagegate_server.pricing import PriceTable, TokenUsage, combine_streamed, load_prices
from imagegate_server.pricing.entries import TokenPrices

TABLE: PriceTable = load_prices()
TOKEN_MODELS = sorted(k for k, v in TABLE.models.items() if isinstance(v, TokenPrices))
ALL_MODELS = sorted(TABLE.models) + sorted(TABLE.aliases) + ["gpt-image-2-2026-04-21"]
FIELDS = ("text_in", "image_in", "text_out", "image_out")

counts = st.integers(min_value=0, max_value=5_000_000)
usages = st.builds(
    TokenUsage,
    text_in=counts,
    image_in=counts,
    text_out=counts,
    image_out=counts,
    output_itemised=st.booleans(),
)
qualities = st.sampled_from([None, "auto", "low", "medium", "high", "xhigh", "max", "hd", "x"])
sizes = st.sampled_from(
    [None, "auto", "1024x1024", "1024x1536", "1536x1024", "256x256", "1792x1024", "2048x1152"]
)


def cost(model: str, usage: TokenUsage, images: int = 1) -> int:
    micros = TABLE.cost_micros(model, usage, images=images, size=None, quality=None)
    assert micros is not None
    return micros


@given(st.sampled_from(TOKEN_MODELS), usages, st.sampled_from(FIELDS), counts)
def test_cost_is_an_integer_never_negative_and_monotonic_in_every_count(
    model: str, usage: TokenUsage, field: str, more: int
) -> None:
    base = cost(model, usage)
    assert isinstance(base, int) and base >= 0
    bigger = replace(usage, **{field: getattr(usage, field) + more})
    assert cost(model, bigger) >= base


@given(st.sampled_from(TOKEN_MODELS), usages, st.integers(min_value=0, max_value=10))
def test_cost_does_not_depend_on_the_number_of_images(
    model: str, usage: TokenUsage, images: int
) -> None:
    assert cost(model, usage, images) == cost(model, usage, 1)


@given(st.sampled_from(TOKEN_MODELS), st.lists(usages, min_size=1, max_size=5))
def test_a_combined_stream_costs_between_its_dearest_event_and_their_sum(
    model: str, events: list[TokenUsage]
) -> None:
    combined = combine_streamed(events)
    assert combined is not None
    each = [cost(model, event) for event in events]
    assert max(each) <= cost(model, combined) <= sum(each) + len(events)  # +1 per rounding


@given(
    st.sampled_from(ALL_MODELS),
    qualities,
    sizes,
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=0, max_value=32_000),
    st.integers(min_value=0, max_value=16),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["n", "prompt_chars", "input_images", "partial_images"]),
)
def test_estimates_are_integers_never_negative_and_monotonic(
    model: str,
    quality: str | None,
    size: str | None,
    n: int,
    prompt_chars: int,
    input_images: int,
    partial_images: int,
    grow: str,
) -> None:
    call = {
        "quality": quality,
        "size": size,
        "n": n,
        "prompt_chars": prompt_chars,
        "input_images": input_images,
        "partial_images": partial_images,
    }
    estimate = TABLE.estimate_micros(model, **call)  # type: ignore[arg-type]
    assert isinstance(estimate, int) and estimate >= 0
    call[grow] = call[grow] + 1  # type: ignore[operator]
    bigger = TABLE.estimate_micros(model, **call)  # type: ignore[arg-type]
    assert bigger is not None and bigger >= estimate
    dearest = TABLE.max_estimate_micros(**call)  # type: ignore[arg-type]
    assert dearest is not None and dearest >= bigger
