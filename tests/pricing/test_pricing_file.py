"""The built-in table as package data, and the operator's override file."""

from __future__ import annotations

import datetime
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from imagegate_server.errors import StartupError
from imagegate_server.pricing import (
    PricesFileError,
    PriceTable,
    TokenUsage,
    load_price_table,
    load_prices,
)
from imagegate_server.pricing.entries import PerImagePrices, TokenPrices
from imagegate_server.settings import Settings

USAGE = TokenUsage(text_in=100, image_in=0, image_out=1000)
COMPLETE_ENTRY = 'text_in = 1\nimage_in = 2\nimage_out = 3\noutput_tokens = "gpt-image-1"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return path


def test_the_built_in_table_is_dated_package_data(table: PriceTable) -> None:
    text = resources.files("imagegate_server.pricing").joinpath("prices.toml").read_text()
    assert tomllib.loads(text)["version"] == datetime.date(2026, 12, 1)
    assert table.version == datetime.date(2026, 12, 1)
    assert table.override_version is None
    assert table.version_label == "2026-12-01"


def test_the_built_in_prices_are_the_researched_ones(table: PriceTable) -> None:
    # research/tenancy.md 2.1: USD per 1M tokens (text in, image in, image out).
    expected = {
        "gpt-image-2.6-sunburst": ("5.00", "8.00", "30.00", None),
        "gpt-image-2.5-sunburst": ("5.00", "8.00", "30.00", None),
        "gpt-image-2": ("5.00", "8.00", "30.00", "10.00"),
        "gpt-image-1.5": ("5.00", "8.00", "32.00", "10.00"),
        "gpt-image-1-mini": ("2.00", "2.50", "8.00", None),
        "gpt-image-1": ("5.00", "10.00", "40.00", None),
    }
    for model, (text_in, image_in, image_out, text_out) in expected.items():
        entry = table.models[model]
        assert isinstance(entry, TokenPrices)
        assert (entry.text_in, entry.image_in, entry.image_out) == (
            Decimal(text_in),
            Decimal(image_in),
            Decimal(image_out),
        )
        assert entry.text_out == (None if text_out is None else Decimal(text_out))
        assert entry.text_in_cached is not None and entry.image_in_cached is not None
    dall_e_3 = table.models["dall-e-3"]
    assert isinstance(dall_e_3, PerImagePrices)
    assert dall_e_3.per_image["hd"]["1792x1024"] == 120_000


def test_override_changes_a_price_adds_a_model_and_an_alias(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version = 2027-01-15\n"
        '[models."gpt-image-2"]\n'
        'text_in = 4\nimage_in = 8\nimage_out = 25\noutput_tokens = "gpt-image-2"\n'
        '[models."acme-image"]\n' + COMPLETE_ENTRY + "[aliases]\n"
        '"acme-image-latest" = "acme-image"\n'
        '"my-gpt" = "gpt-image-2"\n',
    )
    table = load_prices(path)
    assert table.version_label == "2026-12-01+2027-01-15"

    def cost(model: str) -> int | None:
        return table.cost_micros(model, USAGE, images=1, size=None, quality=None)

    assert cost("gpt-image-2") == 100 * 4 + 1000 * 25
    assert cost("gpt-image-2-2026-04-21") == 100 * 4 + 1000 * 25  # snapshots follow
    assert cost("acme-image") == 100 * 1 + 1000 * 3
    assert cost("acme-image-latest") == 100 * 1 + 1000 * 3
    assert cost("my-gpt") == 100 * 4 + 1000 * 25
    # Everything the file does not name stays built-in.
    assert cost("gpt-image-1") == 100 * 5 + 1000 * 40
    assert cost("gpt-image-2.6-flare") == 100 * 5 + 1000 * 30


def test_override_replaces_an_entry_whole(tmp_path: Path) -> None:
    # A partial entry would mix two sources' prices: it is an error, not a merge.
    path = write(tmp_path, '[models."gpt-image-2.6-flare"]\nimage_out = 25\n')
    with pytest.raises(PricesFileError) as caught:
        load_prices(path)
    assert str(caught.value) == (
        'models."gpt-image-2.6-flare".text_in: is required (USD per 1M tokens)'
    )


def test_override_turns_an_alias_into_a_model_and_back(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[models."chatgpt-image-latest"]\n' + COMPLETE_ENTRY + "[aliases]\n"
        '"gpt-image-1" = "gpt-image-1.5"\n',
    )
    table = load_prices(path)
    assert table.resolve("chatgpt-image-latest") == "chatgpt-image-latest"
    assert table.resolve("gpt-image-1") == "gpt-image-1.5"
    assert "gpt-image-1" not in table.models


def test_override_estimates_merge_key_by_key(tmp_path: Path, table: PriceTable) -> None:
    path = write(tmp_path, '[estimates]\nauto_quality = "medium"\n')
    merged = load_prices(path)
    assert merged.estimates.auto_quality == "medium"
    assert merged.estimates.input_image_tokens == table.estimates.input_image_tokens
    auto = merged.estimate_micros("gpt-image-1", quality="auto", size="1024x1024", n=1)
    medium = merged.estimate_micros("gpt-image-1", quality="medium", size="1024x1024", n=1)
    assert auto == medium


def test_settings_name_the_file_and_a_missing_one_stops_start_up(tmp_path: Path) -> None:
    good = write(tmp_path, '[models."acme"]\n' + COMPLETE_ENTRY)
    table = load_price_table(Settings(prices_file=good))
    assert table.resolve("acme") == "acme"
    assert load_price_table(Settings()).override_version is None
    missing = tmp_path / "absent.toml"
    with pytest.raises(StartupError) as caught:
        load_price_table(Settings(prices_file=missing))
    assert str(caught.value) == f"IMAGEGATE_PRICES_FILE {str(missing)!r}: no such file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = [", "not valid TOML: "),
        ("version = 2027-13-01", "not valid TOML: "),
        ('version = "soon"', "version: must be a date like 2026-12-01"),
        ("prices = 1", "prices: unknown field"),
        ('[models."x"]\ntext_in = 1', "models.x.image_in: is required (USD per 1M tokens)"),
        (
            '[models."x"]\n' + COMPLETE_ENTRY.replace("image_out = 3", "image_out = -3"),
            "models.x.image_out: must be a finite amount >= 0",
        ),
        (
            '[models."x"]\n' + COMPLETE_ENTRY.replace("image_out = 3", 'image_out = "3"'),
            "models.x.image_out: must be a price in USD per 1M tokens, e.g. 5.00",
        ),
        (
            '[models."x"]\n' + COMPLETE_ENTRY + "image_output = 3\n",
            "models.x.image_output: unknown field (a per-token entry; a per-image entry has "
            "per_image)",
        ),
        (
            '[models."gpt-image-2"]\n' + COMPLETE_ENTRY.replace('"gpt-image-1"', '"nope"'),
            "models.gpt-image-2.output_tokens: names no [output_tokens] profile",
        ),
        (
            '[models."x"]\ndefault_quality = "standard"\ndefault_size = "1024x1024"\n'
            '[models."x".per_image.standard]\n"1024x1024" = 0.0400001\n',
            "models.x.per_image.standard.1024x1024: must have at most 6 decimal places "
            "(micro-dollars)",
        ),
        (
            '[models."x"]\ndefault_quality = "hd"\ndefault_size = "1024x1024"\n'
            '[models."x".per_image.standard]\n"1024x1024" = 0.04\n',
            "models.x.default_quality: must be one of its per_image qualities",
        ),
        (
            '[models."x"]\ndefault_quality = "standard"\ndefault_size = "1024x1024"\n'
            '[models."x".per_image.standard]\n"big" = 0.04\n',
            "models.x.per_image.standard.big: must be a size like 1024x1024",
        ),
        ('[aliases]\n"x" = "nowhere"', "aliases.x: names no model entry"),
        ('[aliases]\n"x" = 3', "aliases.x: must name a model entry (a string)"),
        (
            '[models."x"]\n' + COMPLETE_ENTRY + '[aliases]\n"x" = "gpt-image-1"',
            "aliases.x: is also a model entry; a name is one or the other",
        ),
        ("[estimates]\nauto_quality = 3", "estimates.auto_quality: must be a quality name"),
        (
            "[estimates]\nchars_per_text_token = 0",
            "estimates.chars_per_text_token: must be an integer from 1 to 10000000",
        ),
        ("[estimates]\nstandard_sizes = []", "estimates.standard_sizes: must be a non-empty"),
        (
            '[output_tokens."p"]\nreference_size = "1024x1024"\nlow = { "1536x1024" = 400 }',
            "output_tokens.p.low: must give the reference_size",
        ),
        (
            '[output_tokens."p"]\nformula = "cubic"',
            'output_tokens.p.formula: must be "short-axis"',
        ),
        ("models = 3", "models: must be a table"),
    ],
)
def test_malformed_files_stop_start_up_with_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StartupError) as caught:
        load_price_table(Settings(prices_file=path))
    line = str(caught.value)
    assert "\n" not in line
    prefix = f"IMAGEGATE_PRICES_FILE {str(path)!r}: "
    assert line.startswith(prefix + message), line


def test_errors_never_quote_a_value(tmp_path: Path) -> None:
    secret = "sk-live-do-not-echo"
    path = write(tmp_path, f'[models."x"]\n{COMPLETE_ENTRY}text_in_cached = "{secret}"\n')
    with pytest.raises(StartupError) as caught:
        load_price_table(Settings(prices_file=path))
    assert secret not in str(caught.value)
    assert "models.x.text_in_cached" in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_bytes(b"version = \xff\n")
    with pytest.raises(StartupError) as caught:
        load_price_table(Settings(prices_file=path))
    assert str(caught.value).endswith(": is not UTF-8 text")
