"""A streamed call costs what the same call costs unary, plus the partial images."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from support.images import png

from imagegate_server.pricing import PriceTable, TokenUsage, combine_streamed

PROMPT = "a fox in fresh snow, morning light"
PARTIAL_IMAGE_TOKENS = 100


async def call(
    client: openai.AsyncOpenAI,
    operation: str,
    *,
    n: int,
    stream: bool,
    partial_images: int = 0,
) -> list[TokenUsage]:
    """The usages a call reports: one for unary, one per completed event streamed."""
    args: dict[str, Any] = {
        "model": "gpt-image-1",
        "prompt": PROMPT,
        "n": n,
        "quality": "low",
        "size": "1024x1024",
    }
    if stream:
        args.update(stream=True, partial_images=partial_images)
    if operation == "edit":
        args["image"] = [("in.png", png(1024, 1536, mode="RGB"), "image/png")]
        answer = await client.images.edit(**args)
    else:
        answer = await client.images.generate(**args)
    if not stream:
        assert answer.usage is not None
        return [TokenUsage.from_openai(answer.usage.model_dump())]
    usages = []
    partials = 0
    async for event in answer:
        if event.type.endswith(".partial_image"):
            partials += 1
        elif event.type.endswith(".completed"):
            usages.append(TokenUsage.from_openai(event.usage.model_dump()))
    assert (len(usages), partials) == (n, n * partial_images)
    return usages


def cost(table: PriceTable, usage: TokenUsage | None, n: int) -> int:
    assert usage is not None
    micros = table.cost_micros("gpt-image-1", usage, images=n, size="1024x1024", quality="low")
    assert micros is not None
    return micros


@pytest.mark.parametrize("operation", ["generation", "edit"])
@pytest.mark.parametrize("n", [1, 2, 3])
async def test_streamed_cost_equals_unary_cost_plus_partial_images(
    client: openai.AsyncOpenAI, table: PriceTable, operation: str, n: int
) -> None:
    (unary,) = await call(client, operation, n=n, stream=False)
    streamed = combine_streamed(await call(client, operation, n=n, stream=True))
    with_partials = combine_streamed(
        await call(client, operation, n=n, stream=True, partial_images=2)
    )
    # Token for token: input once, the images' output summed.
    assert streamed == unary
    assert cost(table, streamed, n) == cost(table, unary, n)
    # Each partial image is 100 image output tokens ($40/M on gpt-image-1), exactly.
    assert with_partials is not None
    assert with_partials.image_out == unary.image_out + n * 2 * PARTIAL_IMAGE_TOKENS
    assert cost(table, with_partials, n) - cost(table, unary, n) == n * 2 * 100 * 40
    if operation == "edit":
        assert unary.image_in > 0  # the input image is priced, once


async def test_summing_every_event_would_overcharge_the_input(
    client: openai.AsyncOpenAI, table: PriceTable
) -> None:
    # Why inputs count once: each completed event repeats the call's input tokens.
    events = await call(client, "edit", n=3, stream=True)
    (unary,) = await call(client, "edit", n=3, stream=False)
    summed = combine_streamed(events, inputs="per_event")
    assert summed is not None
    assert summed.input_tokens == 3 * unary.input_tokens
    assert cost(table, summed, 3) > cost(table, unary, 3)


def test_combining_no_events_gives_no_usage() -> None:
    assert combine_streamed([]) is None


def test_combining_keeps_itemisation_only_when_every_event_had_it() -> None:
    itemised = TokenUsage(text_in=5, image_out=272, output_itemised=True)
    bare = TokenUsage(text_in=5, image_out=272)
    assert combine_streamed([itemised, itemised]) == TokenUsage(
        text_in=5, image_out=544, output_itemised=True
    )
    combined = combine_streamed([itemised, bare])
    assert combined is not None and not combined.output_itemised
