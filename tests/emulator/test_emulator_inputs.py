"""Inputs that pass validation must be served (200), inputs that cannot be served must be
OpenAI's 400: never a 500 from the job or the renderer."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from emulator_support import API_KEY, SchemaCheck, decode
from support.images import png

from imagegate_server.emulator import Emulator

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def post_json(emulator: Emulator, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=AUTH, timeout=30) as http:
        return await http.post(path, json=body)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-image-1", "prompt": "p", "n": 2.0, "size": "1024x1024"},
        {
            "model": "gpt-image-1",
            "prompt": "p",
            "size": "1024x1024",
            "output_format": "jpeg",
            "output_compression": 50.0,
        },
        {"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 1.0},
        {
            "model": "gpt-image-2.5-flare",
            "prompt": "p",
            "size": "256x256",
            "output_format": "gif",
            "frame_count": 3.0,
            "frame_duration_ms": 120.0,
        },
        # Beyond what a GIF can encode: capped, as OpenAI caps it, not a render failure.
        {
            "model": "gpt-image-2.5-flare",
            "prompt": "p",
            "size": "256x256",
            "output_format": "gif",
            "frame_count": 2,
            "frame_duration_ms": 10**9,
        },
    ],
)
async def test_integral_floats_are_used_as_validated(
    emulator: Emulator, body: dict[str, Any]
) -> None:
    response = await post_json(emulator, "/images/generations", body)
    assert response.status_code == 200, response.text
    if body.get("stream"):
        assert response.text.count("image_generation.partial_image") == 2  # event + type
        return
    data = response.json()["data"]
    assert len(data) == int(body.get("n", 1))
    if "frame_count" in body:
        assert getattr(decode(data[0]["b64_json"]), "n_frames", 1) == int(body["frame_count"])


def truncated_png(width: int = 64, height: int = 64) -> bytes:
    """A PNG whose header (signature, IHDR) is intact but whose pixel data is cut off."""
    whole = png(width, height, mode="RGBA", noise=True, seed=7)  # incompressible: a long IDAT
    return whole[: len(whole) // 2]


async def test_corrupt_uploads_are_openai_400s(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    broken = ("b.png", truncated_png(), "image/png")
    good = ("g.png", png(64, 64, (0, 0, 0, 0)), "image/png")
    attempts: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("image", lambda: client.images.edit(model="gpt-image-1", prompt="p", image=broken)),
        (
            "image[1]",
            lambda: client.images.edit(model="gpt-image-1", prompt="p", image=[good, broken]),
        ),
        ("mask", lambda: client.images.edit(model="dall-e-2", prompt="p", image=good, mask=broken)),
        ("image", lambda: client.images.create_variation(image=broken, response_format="b64_json")),
    ]
    for param, attempt in attempts:
        with pytest.raises(openai.BadRequestError) as caught:
            await attempt()
        assert (caught.value.param, caught.value.code, caught.value.type) == (
            param,
            "invalid_image_file",
            "invalid_request_error",
        )
        check_schema("ErrorResponse", caught.value.response.json())


async def test_corrupt_data_url_in_a_json_edit_is_a_400(emulator: Emulator) -> None:
    url = "data:image/png;base64," + base64.b64encode(truncated_png()).decode()
    response = await post_json(
        emulator, "/images/edits", {"prompt": "p", "images": [{"image_url": url}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "images[0]"
    assert response.json()["error"]["code"] == "invalid_image_file"
