"""Real-sized answers: images as large, encoded, as OpenAI's, photographic-like,
deterministic and still carrying their identity; from the config, the CLI flag and
the embedded emulator's setting."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest
from emulator_support import API_KEY, decode
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from PIL import Image, ImageChops
from support.environment import clear_settings

from imagegate_server.emulator import Emulator, EmulatorConfig, identity, read_identity
from imagegate_server.emulator.real_sizes import target_bytes
from imagegate_server.gateway.server import Gateway
from imagegate_server.settings import Settings

MB = 1_000_000
TOLERANCE = 0.25


@pytest.fixture
async def real() -> AsyncIterator[openai.AsyncOpenAI]:
    async with Emulator(EmulatorConfig(api_key=API_KEY, real_sizes=True)) as emulator:
        yield openai.AsyncOpenAI(
            api_key=API_KEY, base_url=emulator.base_url, max_retries=0, timeout=60
        )


def assert_near(size: int, target: int | None) -> None:
    assert target is not None
    assert abs(size / target - 1) <= TOLERANCE, f"{size} bytes, target {target}"


@pytest.mark.parametrize(
    ("model", "size", "quality", "output_format", "compression", "background"),
    [
        ("gpt-image-1.5", "1024x1024", "medium", "png", None, "opaque"),
        ("gpt-image-2", "1536x1024", "high", "png", None, "opaque"),
        ("gpt-image-1.5", "1024x1024", "low", "jpeg", 80, "opaque"),
        ("gpt-image-1.5", "1024x1536", "high", "webp", 100, "transparent"),
    ],
)
async def test_images_are_as_large_as_openais(
    real: openai.AsyncOpenAI,
    model: str,
    size: str,
    quality: str,
    output_format: str,
    compression: int | None,
    background: str,
) -> None:
    extra = {} if compression is None else {"output_compression": compression}
    prompt = f"a lighthouse in a storm, {quality} {output_format}"
    result = await real.images.generate(
        model=model,
        prompt=prompt,
        size=size,  # type: ignore[arg-type]
        quality=quality,  # type: ignore[arg-type]
        output_format=output_format,  # type: ignore[arg-type]
        background=background,  # type: ignore[arg-type]
        n=2,
        **extra,  # type: ignore[arg-type]
    )
    width, height = (int(side) for side in size.split("x"))
    target = target_bytes(
        output_format, quality, compression or 100, background == "transparent", width, height
    )
    assert result.data is not None and len(result.data) == 2
    payloads = [base64.b64decode(item.b64_json or "") for item in result.data]
    for index, data in enumerate(payloads):
        assert_near(len(data), target)
        assert read_identity(data) == identity(prompt, index)
        image = decode(base64.b64encode(data).decode())
        assert image.size == (width, height)
        assert image.format == output_format.upper()
        assert (image.mode == "RGBA") == (background == "transparent")
    assert payloads[0] != payloads[1]


def test_the_targets_are_in_the_ranges_openai_answers_show() -> None:
    """PNG answers of GPT image models are megabytes (1.5-3 MB at 1024x1024, 2-4 MB at
    1536x1024); higher quality means more detail; JPEG and WebP are far smaller."""

    def png(quality: str, width: int, height: int) -> int:
        value = target_bytes("png", quality, 100, False, width, height)
        assert value is not None
        return value

    for quality in ("medium", "high"):
        assert 1.5 * MB <= png(quality, 1024, 1024) <= 3 * MB
        assert 2 * MB <= png(quality, 1536, 1024) <= 4 * MB
    assert png("low", 1024, 1024) < png("medium", 1024, 1024) < png("high", 1024, 1024)
    for lossy in ("jpeg", "webp"):
        full = target_bytes(lossy, "medium", 100, False, 1024, 1024)
        half = target_bytes(lossy, "medium", 50, False, 1024, 1024)
        assert full is not None and half is not None
        assert half < full < png("medium", 1024, 1024) / 2
    assert target_bytes("gif", "medium", 100, False, 1024, 1024) is None


async def test_real_sized_images_are_deterministic_and_photographic(
    real: openai.AsyncOpenAI,
) -> None:
    async def png(prompt: str) -> bytes:
        result = await real.images.generate(
            model="gpt-image-1.5", prompt=prompt, size="1024x1024", quality="low"
        )
        assert result.data
        return base64.b64decode(result.data[0].b64_json or "")

    first, again, other = await png("same"), await png("same"), await png("other")
    assert first == again and first != other
    # Not flat shapes (where ~99% of pixels equal their left neighbour): texture.
    assert same_as_left_neighbour(first) < 0.5


def same_as_left_neighbour(data: bytes) -> float:
    """The share of pixels identical to the one on their left."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    steps = ImageChops.difference(image, ImageChops.offset(image, 1, 0)).convert("L")
    histogram = steps.histogram()
    return histogram[0] / sum(histogram)


async def test_cached_real_sized_templates_keep_size_and_identities() -> None:
    config = EmulatorConfig(api_key=API_KEY, real_sizes=True, cached_renders=True)
    async with Emulator(config) as emulator:
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url, max_retries=0)
        target = target_bytes("jpeg", "high", 90, False, 1536, 1024)
        seen = set()
        for prompt in ("one", "two"):
            result = await client.images.generate(
                model="gpt-image-1.5",
                prompt=prompt,
                size="1536x1024",
                quality="high",
                output_format="jpeg",
                output_compression=90,
                n=2,
            )
            assert result.data
            for index, item in enumerate(result.data):
                data = base64.b64decode(item.b64_json or "")
                assert_near(len(data), target)
                assert read_identity(data) == identity(prompt, index)
                assert decode(item.b64_json).size == (1536, 1024)
                seen.add(data)
        assert len(seen) == 4


async def test_streamed_partial_and_final_images_are_real_sized() -> None:
    async with (
        Emulator(EmulatorConfig(api_key=API_KEY, real_sizes=True)) as emulator,
        httpx.AsyncClient(base_url=emulator.base_url, timeout=60) as http,
    ):
        response = await http.post(
            "/images/generations",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={
                "model": "gpt-image-1.5",
                "prompt": "p",
                "size": "1024x1024",
                "quality": "low",
                "output_format": "webp",
                "stream": True,
                "partial_images": 1,
            },
        )
    assert response.status_code == 200
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert [event["type"] for event in events] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    target = target_bytes("webp", "low", 100, False, 1024, 1024)
    for event in events:
        data = base64.b64decode(event["b64_json"])
        assert_near(len(data), target)
        assert read_identity(data) == identity("p", 0)


async def test_the_cli_flag_serves_real_sizes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imagegate_server.cli", "emulator", "--port", "0", "--real-sizes",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        base_url = line.decode().rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:"), line
        client = openai.AsyncOpenAI(api_key="k", base_url=base_url, max_retries=0, timeout=60)
        result = await client.images.generate(
            model="gpt-image-1.5", prompt="p", size="1024x1024", quality="medium"
        )
        assert result.data
        data = base64.b64decode(result.data[0].b64_json or "")
        assert_near(len(data), target_bytes("png", "medium", 100, False, 1024, 1024))
    finally:
        process.terminate()
        await process.wait()


async def test_the_embedded_emulator_follows_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)
    monkeypatch.setenv("IMAGEGATE_EMULATOR_REAL_SIZES", "true")
    settings = Settings(_env_file=None, _secrets_dir=None, port=0, shutdown_grace_s=0)  # type: ignore[call-arg]
    gateway = Gateway(settings)
    await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = images_service_pb2_grpc.ImagesServiceStub(channel)
            parameters = params_pb2.GenerationParameters(
                prompt="p", model="gpt-image-1.5", size="1024x1024"
            )
            parameters.output_format = params_pb2.OUTPUT_FORMAT_JPEG
            parameters.output_compression = 90
            result = await stub.CreateImage(pb.CreateImageRequest(parameters=parameters))
    finally:
        await gateway.stop(0)
    data = result.result.images[0].data
    assert_near(len(data), target_bytes("jpeg", "medium", 90, False, 1024, 1024))
