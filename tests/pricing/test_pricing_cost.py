"""Settled costs: usage priced by the built-in table, in integer micro-dollars."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate_server.pricing import (
    CostBasis,
    InvalidUsage,
    PriceTable,
    TokenUsage,
    load_prices,
)

# The real gpt-image-1 response quoted in LiteLLM PR #40002 (research/tenancy.md 2.2).
WORKED_EXAMPLE = {
    "input_tokens": 42,
    "input_tokens_details": {"image_tokens": 0, "text_tokens": 42},
    "output_tokens": 272,
    "output_tokens_details": {"image_tokens": 272, "text_tokens": 0},
    "total_tokens": 314,
}


def test_worked_example_costs_11090_micro_dollars(table: PriceTable) -> None:
    # 42 x $5/M + 272 x $40/M = $0.00021 + $0.01088 = $0.01109.
    usage = TokenUsage.from_openai(WORKED_EXAMPLE)
    assert table.cost_micros("gpt-image-1", usage, images=1, size=None, quality=None) == 11090
    cost = table.cost("gpt-image-1", usage, images=1, size=None, quality=None)
    assert cost is not None
    assert cost.basis is CostBasis.USAGE
    assert cost.priced_as == "gpt-image-1"


def test_output_without_breakdown_is_priced_as_image_tokens(table: PriceTable) -> None:
    bare = {k: v for k, v in WORKED_EXAMPLE.items() if k != "output_tokens_details"}
    usage = TokenUsage.from_openai(bare)
    assert (usage.image_out, usage.text_out, usage.output_itemised) == (272, 0, False)
    assert table.cost_micros("gpt-image-1", usage, images=1, size=None, quality=None) == 11090
    # An empty breakdown (as some streams send, maximhq/bifrost#4777) is no breakdown.
    empty = TokenUsage.from_openai({**bare, "output_tokens_details": {}})
    assert empty == usage


def test_itemised_text_output_uses_the_text_output_rate(table: PriceTable) -> None:
    # gpt-image-1.5 lists text out at $10/M and image out at $32/M.
    usage = TokenUsage.from_openai(
        {
            "input_tokens": 10,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
            "output_tokens": 1100,
            "output_tokens_details": {"text_tokens": 100, "image_tokens": 1000},
        }
    )
    cost = table.cost_micros("gpt-image-1.5", usage, images=1, size=None, quality=None)
    assert cost == 10 * 5 + 100 * 10 + 1000 * 32


def test_text_output_without_a_listed_rate_is_priced_as_image_output(table: PriceTable) -> None:
    # gpt-image-2.6 lists no text-output rate: the dearer image rate, not zero.
    usage = TokenUsage(text_out=100, image_out=1000, output_itemised=True)
    cost = table.cost_micros("gpt-image-2.6-sunburst", usage, images=1, size=None, quality=None)
    assert cost == 1100 * 30


def test_output_beyond_the_itemised_parts_counts_as_image_output() -> None:
    usage = TokenUsage.from_openai(
        {
            "input_tokens": 50,
            "input_tokens_details": {"text_tokens": 20, "image_tokens": 10},
            "output_tokens": 500,
            "output_tokens_details": {"text_tokens": 100, "image_tokens": 300},
        }
    )
    # Unexplained input (20) joins image input; unexplained output (100) image output.
    assert usage == TokenUsage(20, 30, 100, 400, output_itemised=True)


def test_usage_is_never_multiplied_by_the_number_of_images(table: PriceTable) -> None:
    usage = TokenUsage.from_openai(WORKED_EXAMPLE)
    costs = {
        table.cost_micros("gpt-image-1", usage, images=images, size="1024x1024", quality="low")
        for images in (1, 2, 10)
    }
    assert costs == {11090}


@pytest.mark.parametrize(
    ("model", "quality", "size", "micros"),
    [
        ("dall-e-3", "standard", "1024x1024", 40_000),
        ("dall-e-3", "standard", "1792x1024", 80_000),
        ("dall-e-3", "hd", "1024x1024", 80_000),
        ("dall-e-3", "hd", "1024x1792", 120_000),
        ("dall-e-3", None, None, 40_000),  # spec defaults: standard, 1024x1024
        ("dall-e-3", "auto", "1024x1024", 40_000),
        ("dall-e-2", None, "256x256", 16_000),
        ("dall-e-2", "standard", "512x512", 18_000),
        ("dall-e-2", None, None, 20_000),
    ],
)
def test_dall_e_models_are_priced_per_image(
    table: PriceTable, model: str, quality: str | None, size: str | None, micros: int
) -> None:
    for images in (1, 3):
        cost = table.cost(model, None, images=images, size=size, quality=quality)
        assert cost is not None
        assert (cost.micros, cost.basis) == (images * micros, CostBasis.PER_IMAGE)


def test_dall_e_values_the_table_does_not_list_take_the_dearest(table: PriceTable) -> None:
    # A quality or size outside the table (OpenAI would refuse the call anyway)
    # never prices below what any listed combination costs.
    assert (
        table.cost_micros("dall-e-3", None, images=1, size="1024x1024", quality="ultra") == 80_000
    )
    assert table.cost_micros("dall-e-3", None, images=1, size="2048x2048", quality="hd") == 120_000
    assert table.cost_micros("dall-e-2", None, images=2, size="auto", quality=None) == 40_000


def test_gpt_model_without_usage_falls_back_to_the_estimate(table: PriceTable) -> None:
    kwargs = {"size": "1024x1024", "quality": "low", "prompt_chars": 40, "input_images": 1}
    cost = table.cost("gpt-image-1", None, images=2, **kwargs)  # type: ignore[arg-type]
    estimate = table.estimate_micros("gpt-image-1", n=2, **kwargs)  # type: ignore[arg-type]
    assert cost is not None
    assert cost.basis is CostBasis.ESTIMATE
    assert cost.micros == estimate


def test_unknown_model_has_no_price(table: PriceTable) -> None:
    usage = TokenUsage.from_openai(WORKED_EXAMPLE)
    assert table.cost("gpt-image-3", usage, images=1, size=None, quality=None) is None
    assert table.cost_micros("dall-e-4", None, images=1, size=None, quality=None) is None
    assert table.estimate_micros("gpt-image-3", quality=None, size=None, n=1) is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return path


def test_cost_rounds_half_up_once_per_call(tmp_path: Path) -> None:
    table = load_prices(
        write(
            tmp_path,
            '[models."half"]\n'
            'text_in = 0.5\nimage_in = 0.5\nimage_out = 0.25\noutput_tokens = "gpt-image-1"\n',
        )
    )

    def cost(usage: TokenUsage) -> int | None:
        return table.cost_micros("half", usage, images=1, size=None, quality=None)

    assert cost(TokenUsage(text_in=1)) == 1  # 0.5 -> 1 (half up)
    assert cost(TokenUsage(image_out=1)) == 0  # 0.25 -> 0
    assert cost(TokenUsage(image_out=3)) == 1  # 0.75 -> 1
    assert cost(TokenUsage(text_in=3)) == 2  # 1.5 -> 2
    # Once at the end: 0.5 + 0.5 = 1.0, not round(0.5) + round(0.5) = 2.
    assert cost(TokenUsage(text_in=1, image_in=1)) == 1
    # 0.25 x 2 = 0.5 -> 1, where rounding per image (0.25 -> 0, twice) would give 0.
    assert cost(TokenUsage(image_out=2)) == 1


def test_estimates_round_up(tmp_path: Path) -> None:
    table = load_prices(
        write(
            tmp_path,
            '[models."tenth"]\n'
            'text_in = 0.1\nimage_in = 0.1\nimage_out = 0.0001\noutput_tokens = "gpt-image-1"\n'
            "[estimates]\nprompt_overhead_text_tokens = 1\n",
        )
    )
    # One text token at 0.1 micro-dollars plus 272 x 0.0001 = 0.1272 -> 1.
    assert table.estimate_micros("tenth", quality="low", size="1024x1024", n=1) == 1


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        ({"output_tokens": 1}, "usage.input_tokens: is missing"),
        ({"input_tokens": 1}, "usage.output_tokens: is missing"),
        ({"input_tokens": -1, "output_tokens": 1}, "usage.input_tokens: must be an integer from"),
        (
            {"input_tokens": 1, "output_tokens": 10**12 + 1},
            "usage.output_tokens: must be an integer from 0 to 1000000000000",
        ),
        ({"input_tokens": 1, "output_tokens": 2.5}, "usage.output_tokens: must be an integer"),
        ({"input_tokens": True, "output_tokens": 1}, "usage.input_tokens: must be an integer"),
        (
            {"input_tokens": 1, "output_tokens": 1, "input_tokens_details": []},
            "usage.input_tokens_details: must be an object",
        ),
        (
            {"input_tokens": 1, "output_tokens": 1, "output_tokens_details": {"text_tokens": "9"}},
            "usage.output_tokens_details.text_tokens: must be an integer",
        ),
    ],
)
def test_malformed_usage_is_refused_naming_the_field(
    usage: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidUsage) as caught:
        TokenUsage.from_openai(usage)
    assert str(caught.value).startswith(problem)
