"""Which table entry prices a model name."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate_server.models import MODEL_RULES
from imagegate_server.pricing import PriceTable, TokenUsage, load_prices


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("gpt-image-2", "gpt-image-2"),
        ("gpt-image-1", "gpt-image-1"),
        ("dall-e-3", "dall-e-3"),
        # Dated snapshots fall back to their base name.
        ("gpt-image-2-2026-04-21", "gpt-image-2"),
        ("gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-sunburst"),
        ("gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-sunburst"),
        ("gpt-image-1.5-2025-12-16", "gpt-image-1.5"),
        ("gpt-image-2-2027-01-01", "gpt-image-2"),  # a snapshot the table never heard of
        # Explicit aliases.
        ("chatgpt-image-latest", "gpt-image-1.5"),
        ("gpt-image-2.6-flare", "gpt-image-2.6-sunburst"),
        # Family patterns price a new variant of a known family.
        ("gpt-image-2.6-ember", "gpt-image-2.6-sunburst"),
        ("gpt-image-2.6-ember-2027-02-02", "gpt-image-2.6-sunburst"),
        ("gpt-image-2.5-spark", "gpt-image-2.5-sunburst"),
    ],
)
def test_model_names_resolve_to_their_entry(table: PriceTable, model: str, entry: str) -> None:
    assert table.resolve(model) == entry


@pytest.mark.parametrize(
    "model",
    [
        "gpt-image-3",  # a new family is never priced as an old one
        "gpt-image-2.7-sunburst",
        "gpt-image-20",
        "GPT-IMAGE-2",  # OpenAI's names are case-sensitive
        "gpt-image-2-latest",
        "gpt-image-2-2026-04",  # not a dated snapshot
        "",
        "dall-e-4",
    ],
)
def test_unknown_models_have_no_price(table: PriceTable, model: str) -> None:
    assert table.resolve(model) is None
    assert table.prices(model) is None


def test_every_model_the_gateway_knows_has_a_price(table: PriceTable) -> None:
    # models/table.py is the gateway's list of OpenAI's models: none may fall to the
    # unpriced-model policy by accident.
    unpriced = sorted(name for name in MODEL_RULES if table.resolve(name) is None)
    assert unpriced == []


def test_the_longest_matching_pattern_wins(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."wide-*"]\n'
        'text_in = 1\nimage_in = 1\nimage_out = 1\noutput_tokens = "gpt-image-1"\n'
        '[models."wide-narrow-*"]\n'
        'text_in = 2\nimage_in = 2\nimage_out = 2\noutput_tokens = "gpt-image-1"\n'
        "[aliases]\n"
        '"wide-narrow-x?" = "gpt-image-1"\n'
    )
    table = load_prices(path)
    assert table.resolve("wide-a") == "wide-*"
    assert table.resolve("wide-narrow-a") == "wide-narrow-*"
    assert table.resolve("wide-narrow-x1") == "gpt-image-1"  # a pattern alias, longest
    assert table.resolve("wide-narrow-x12") == "wide-narrow-*"
    usage = TokenUsage(image_out=10)
    assert table.cost_micros("wide-narrow-b", usage, images=1, size=None, quality=None) == 20


def test_an_exact_name_beats_a_pattern_and_a_snapshot_beats_a_pattern(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."gpt-image-2*"]\n'
        'text_in = 1\nimage_in = 1\nimage_out = 1\noutput_tokens = "gpt-image-2"\n'
    )
    table = load_prices(path)
    assert table.resolve("gpt-image-2") == "gpt-image-2"
    assert table.resolve("gpt-image-2-2026-04-21") == "gpt-image-2"
    assert table.resolve("gpt-image-2.9") == "gpt-image-2*"
