"""The three operations through the official openai client, checked against the spec."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import httpx
import openai
import pytest
from emulator_support import API_KEY, SchemaCheck, decode
from PIL import Image
from support.images import encode, make_image, png

from imagegate_server.emulator import Emulator, identity, read_identity


async def test_gpt_generation_shape_usage_and_identity(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    raw = await client.images.with_raw_response.generate(
        model="gpt-image-1.5", prompt="a red fox in snow", n=3, size="1024x1536", quality="low"
    )
    check_schema("ImagesResponse", raw.http_response.json())
    assert raw.headers["x-request-id"].startswith("req_")
    for name in (
        "openai-processing-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-tokens",
    ):
        assert name in raw.headers
    result = raw.parse()
    assert (result.size, result.quality, result.output_format, result.background) == (
        "1024x1536",
        "low",
        "png",
        "opaque",
    )
    assert result.usage is not None and result.usage.output_tokens_details is not None
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    assert result.usage.input_tokens_details.text_tokens > 0
    assert result.data is not None and len(result.data) == 3
    for index, item in enumerate(result.data):
        assert item.url is None
        image = decode(item.b64_json)
        assert image.size == (1024, 1536) and image.format == "PNG"
        assert image.info["imagegate-identity"] == identity("a red fox in snow", index)


async def test_generation_is_deterministic(client: openai.AsyncOpenAI) -> None:
    first = await client.images.generate(model="gpt-image-1", prompt="same", size="1024x1024")
    second = await client.images.generate(model="gpt-image-1", prompt="same", size="1024x1024")
    other = await client.images.generate(model="gpt-image-1", prompt="different", size="1024x1024")
    assert first.data and second.data and other.data
    assert first.data[0].b64_json == second.data[0].b64_json
    assert first.data[0].b64_json != other.data[0].b64_json


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("webp", "WEBP")])
async def test_output_formats_carry_identity(
    client: openai.AsyncOpenAI, fmt: Any, pil: str
) -> None:
    result = await client.images.generate(
        model="gpt-image-2",
        prompt="lake",
        size="1536x864",
        output_format=fmt,
        output_compression=50,
    )
    assert result.data and result.output_format == fmt and result.size == "1536x864"
    image = decode(result.data[0].b64_json)
    assert image.format == pil and image.size == (1536, 864)
    assert read_identity(base64.b64decode(result.data[0].b64_json or "")) == identity("lake", 0)


async def test_gif_output_is_animated(client: openai.AsyncOpenAI) -> None:
    result = await client.images.generate(
        model="gpt-image-2.5-flare",
        prompt="spin",
        size="256x256",
        output_format="gif",
        frame_count=4,
    )
    assert result.data
    image = decode(result.data[0].b64_json)
    assert image.format == "GIF" and getattr(image, "n_frames", 1) == 4


async def test_dall_e_urls_are_served_by_the_emulator(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    raw = await client.images.with_raw_response.generate(
        model="dall-e-3", prompt="a lighthouse", size="1792x1024", style="natural"
    )
    check_schema("ImagesResponse", raw.http_response.json())
    result = raw.parse()
    assert result.usage is None and result.data
    assert result.data[0].revised_prompt and "lighthouse" in result.data[0].revised_prompt
    assert result.data[0].url and result.data[0].b64_json is None
    async with httpx.AsyncClient() as http:
        fetched = await http.get(result.data[0].url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (1792, 1024)


async def test_dall_e_2_b64(client: openai.AsyncOpenAI, check_schema: SchemaCheck) -> None:
    raw = await client.images.with_raw_response.generate(
        model="dall-e-2", prompt="p", size="256x256", response_format="b64_json", n=2
    )
    check_schema("ImagesResponse", raw.http_response.json())
    result = raw.parse()
    assert result.usage is None and result.data
    assert all(item.url is None and item.revised_prompt is None for item in result.data)
    assert result.data and [decode(d.b64_json).size for d in result.data] == [(256, 256)] * 2


async def test_edit_changes_only_the_masked_area(
    client: openai.AsyncOpenAI, emulator: Emulator, check_schema: SchemaCheck
) -> None:
    source = png(256, 256, (10, 200, 10, 255))
    mask = png(256, 256, (0, 0, 0, 255), clear=(0, 0, 128, 256))  # left half: edit there
    raw = await client.images.with_raw_response.edit(
        model="dall-e-2",
        image=("in.png", source, "image/png"),
        mask=("m.png", mask, "image/png"),
        prompt="purple shapes everywhere",
        size="256x256",
        response_format="b64_json",
    )
    check_schema("ImagesResponse", raw.http_response.json())
    result = raw.parse()
    assert result.data
    edited = decode(result.data[0].b64_json).convert("RGBA")
    right = edited.crop((128, 0, 256, 256))
    assert right.getcolors() == [(128 * 256, (10, 200, 10, 255))]  # untouched
    left_colours = edited.crop((0, 0, 128, 256)).getcolors(1 << 16) or []
    assert max(count for count, _ in left_colours) < 128 * 256  # repainted, not all green
    entry = emulator.journal.by_path("/v1/images/edits")[-1]
    assert [f.field for f in entry.files] == ["image", "mask"]
    assert entry.files[0].sha256 == hashlib.sha256(source).hexdigest()
    assert entry.files[0].size == len(source) and entry.files[0].content_type == "image/png"
    assert ("prompt", "purple shapes everywhere") in entry.form


async def test_dall_e_2_edit_with_standard_quality(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    raw = await client.images.with_raw_response.edit(
        model="dall-e-2",
        image=("in.png", png(256, 256, (0, 0, 0, 0)), "image/png"),
        prompt="p",
        quality="standard",
        size="256x256",
        response_format="b64_json",
    )
    check_schema("ImagesResponse", raw.http_response.json())
    result = raw.parse()
    assert result.data and decode(result.data[0].b64_json).size == (256, 256)


def noise_png(width: int, height: int, seed: int = 1) -> tuple[Image.Image, bytes]:
    """Every pixel different from its neighbours: any resampling would show."""
    image = make_image(width, height, mode="RGB", noise=True, seed=seed)
    return image.convert("RGBA"), encode(image)


async def test_auto_size_edit_keeps_unmasked_pixels_exactly(client: openai.AsyncOpenAI) -> None:
    source, data = noise_png(320, 480)  # a WxH size gpt-image-2 makes
    mask = png(*source.size, (0, 0, 0, 255), clear=(0, 0, 160, 480))  # edit the left half only
    result = await client.images.edit(
        model="gpt-image-2",
        image=("noise.png", data, "image/png"),
        mask=("m.png", mask, "image/png"),
        prompt="paint the left half",
    )
    assert result.data and result.size == "320x480"
    edited = decode(result.data[0].b64_json).convert("RGBA")
    assert edited.size == source.size
    kept = (160, 0, 320, 480)
    assert edited.crop(kept).tobytes() == source.crop(kept).tobytes()
    assert edited.crop((0, 0, 160, 480)).tobytes() != source.crop((0, 0, 160, 480)).tobytes()


@pytest.mark.parametrize(
    ("model", "input_size", "output_size"),
    [
        ("gpt-image-1", (1024, 1536), "1024x1536"),  # one of the model's sizes: kept
        ("gpt-image-1", (64, 64), "1024x1024"),  # otherwise the closest shape it makes
        ("gpt-image-1", (64, 128), "1024x1536"),
        ("gpt-image-2", (64, 128), "64x128"),
    ],
)
async def test_auto_size_edit_follows_the_input(
    client: openai.AsyncOpenAI, model: str, input_size: tuple[int, int], output_size: str
) -> None:
    result = await client.images.edit(
        model=model,
        image=("i.png", png(*input_size, (0, 0, 0, 0)), "image/png"),
        prompt="p",
        size="auto",
    )
    assert result.size == output_size and result.data
    assert decode(result.data[0].b64_json).size == tuple(map(int, output_size.split("x")))


async def test_edit_without_mask_uses_the_image_transparency(client: openai.AsyncOpenAI) -> None:
    image = png(128, 128, (0, 0, 255, 255), clear=(0, 0, 128, 64))  # top half transparent
    result = await client.images.edit(
        model="gpt-image-1",
        image=("i.png", image, "image/png"),
        prompt="sky",
        size="1024x1024",
    )
    assert result.data
    edited = decode(result.data[0].b64_json).convert("RGBA")
    assert edited.crop((0, 600, 1024, 1024)).getcolors() == [(1024 * 424, (0, 0, 255, 255))]
    assert len(edited.crop((0, 0, 1024, 400)).getcolors(1 << 20) or []) > 1


async def test_edit_with_many_images_and_streaming(
    client: openai.AsyncOpenAI, emulator: Emulator, check_schema: SchemaCheck
) -> None:
    images = [(f"{i}.png", png(64, 64, (i * 10, 0, 0, 255)), "image/png") for i in range(16)]
    stream = await client.images.edit(
        model="gpt-image-1.5", image=images, prompt="collage", stream=True, partial_images=1
    )
    events = [event async for event in stream]
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    for event in events:
        check_schema(
            "ImageEditPartialImageEvent"
            if event.type.endswith("partial_image")
            else "ImageEditCompletedEvent",
            event.model_dump(exclude_none=True),
        )
    entry = emulator.journal.by_path("/v1/images/edits")[-1]
    assert [f.field for f in entry.files] == ["image[]"] * 16
    assert entry.form_values("stream") == ["true"]


async def test_too_many_images_is_openai_400(client: openai.AsyncOpenAI) -> None:
    images = [("i.png", png(8, 8), "image/png")] * 17
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.edit(model="gpt-image-1", image=images, prompt="x")
    assert caught.value.code == "array_above_max_length" and caught.value.param == "image"


async def test_json_edit_body(emulator: Emulator, check_schema: SchemaCheck) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png(64, 64)).decode()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=headers) as http:
        ok = await http.post(
            "/images/edits",
            json={
                "model": "gpt-image-1.5",
                "prompt": "x",
                "images": [{"image_url": data_url}] * 2,
                "output_format": "webp",
            },
        )
        by_id = await http.post("/images/edits", json={"prompt": "x", "images": [{"file_id": "f"}]})
        remote = await http.post(
            "/images/edits",
            json={"prompt": "x", "images": [{"image_url": "https://example.com/a.png"}]},
        )
    assert ok.status_code == 200
    check_schema("ImagesResponse", ok.json())
    assert decode(ok.json()["data"][0]["b64_json"]).format == "WEBP"
    for response, param in ((by_id, "images[0].file_id"), (remote, "images[0].image_url")):
        assert response.status_code == 400
        check_schema("ErrorResponse", response.json())
        assert response.json()["error"]["param"] == param


async def test_variations(
    client: openai.AsyncOpenAI, emulator: Emulator, check_schema: SchemaCheck
) -> None:
    split = make_image(256, 256, (250, 10, 10))
    split.paste((10, 10, 250), (0, 0, 128, 256))
    source = encode(split)
    raw = await client.images.with_raw_response.create_variation(
        image=("s.png", source, "image/png"),
        n=2,
        size="256x256",
        response_format="b64_json",
    )
    check_schema("ImagesResponse", raw.http_response.json())
    result = raw.parse()
    assert result.data and len(result.data) == 2
    first, second = (decode(d.b64_json).convert("RGB") for d in result.data)
    assert first.size == (256, 256) and first.tobytes() != second.tobytes()
    # Related: the two-colour split survives (a channel rotation, maybe mirrored).
    assert len({first.getpixel((10, 128)), first.getpixel((245, 128))}) == 2
    url_raw = await client.images.with_raw_response.create_variation(
        image=("s.png", source, "image/png")
    )
    check_schema("ImagesResponse", url_raw.http_response.json())
    url_result = url_raw.parse()
    assert url_result.data and url_result.data[0].url
    assert emulator.journal.entries[-1].form == []


async def test_stream_generation_events(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    stream = await client.images.generate(
        model="gpt-image-1", prompt="waves", stream=True, partial_images=2, n=2
    )
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types == (["image_generation.partial_image"] * 2 + ["image_generation.completed"]) * 2
    assert [getattr(e, "partial_image_index", None) for e in events[:3]] == [0, 1, None]
    for event in events:
        payload = event.model_dump(exclude_none=True)
        assert "index" not in payload
        check_schema(
            "ImageGenPartialImageEvent"
            if event.type.endswith("partial_image")
            else "ImageGenCompletedEvent",
            payload,
        )


async def test_raw_sse_framing(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post(
            "/images/generations",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "gpt-image-1", "prompt": "x", "stream": True, "size": "1024x1024"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text
    assert text.startswith("event: image_generation.completed\ndata: {")
    assert "[DONE]" not in text and text.endswith("\n\n")
