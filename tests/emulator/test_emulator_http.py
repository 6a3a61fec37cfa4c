"""Auth, errors, URLs, the journal over HTTP, cached renders and the CLI wiring."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import openai
import pytest
from emulator_support import API_KEY, SchemaCheck
from support.images import png

from imagegate_server.cli import build_parser
from imagegate_server.emulator import Emulator, EmulatorConfig, identity, read_identity


async def test_missing_and_wrong_keys(emulator: Emulator, check_schema: SchemaCheck) -> None:
    wrong = openai.AsyncOpenAI(
        api_key="sk-wrong-key-1234", base_url=emulator.base_url, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        await wrong.images.generate(model="gpt-image-1", prompt="p")
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-1234" not in caught.value.message
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post("/images/generations", json={"prompt": "p"})
    assert response.status_code == 401
    check_schema("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "invalid_api_key"
    # The journal keeps headers but never the Authorization value.
    assert all(
        entry.headers.get("Authorization") in (None, "<redacted>")
        for entry in emulator.journal.entries
    )


async def test_auth_is_checked_before_the_body(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        broken = await http.post(
            "/images/generations",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert broken.status_code == 401  # not a 400 about the JSON it never needed to read
    assert broken.json()["error"]["code"] == "invalid_api_key"

    # A 64 MB upload without a key: the 401 arrives after a few bytes of the body. The
    # read has a timeout only so that a regression fails instead of hanging.
    port = httpx.URL(emulator.origin).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /v1/images/edits HTTP/1.1\r\nHost: emulator\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Content-Length: {64 * 1024 * 1024}\r\n\r\n".encode()
            + b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            + b"Content-Type: image/png\r\n\r\n"
            + b"\x89PNG" * 1024
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=20)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 401"), status_line


async def test_any_key_is_accepted_without_configured_key() -> None:
    async with Emulator() as emulator:
        client = openai.AsyncOpenAI(api_key="anything", base_url=emulator.base_url, max_retries=0)
        assert (await client.images.generate(model="gpt-image-1", prompt="p")).data


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"model": "dall-e-2", "prompt": "x" * 1001}, "prompt", "string_above_max_length"),
        ({"model": "dall-e-3", "prompt": "p", "n": 2}, "n", "integer_above_max_value"),
        ({"model": "dall-e-2", "prompt": "p", "size": "1536x1024"}, "size", "invalid_value"),
        ({"model": "gpt-image-2", "prompt": "p", "size": "1000x1000"}, "size", "invalid_value"),
        (
            {
                "model": "gpt-image-1",
                "prompt": "p",
                "output_format": "jpeg",
                "output_compression": 101,
            },
            "output_compression",
            "integer_above_max_value",
        ),
    ],
)
async def test_validation_errors(
    client: openai.AsyncOpenAI, kwargs: dict[str, object], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.generate(**kwargs)  # type: ignore[call-overload]
    assert (caught.value.param, caught.value.code, caught.value.type) == (
        param,
        code,
        "invalid_request_error",
    )


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/images/generations", None),
        ("/images/edits", {"prompt": "p"}),
        ("/images/variations", {}),
    ],
)
async def test_unknown_models_are_refused_as_openai_refuses_them(
    emulator: Emulator, check_schema: SchemaCheck, path: str, form: dict[str, str] | None
) -> None:
    # A typo in a model name fails offline as it would against OpenAI: 404,
    # model_not_found, the name echoed; never an image from a model that does not exist.
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=headers) as http:
        if form is None:
            response = await http.post(path, json={"model": "gpt-image2", "prompt": "p"})
        else:
            response = await http.post(
                path,
                data={**form, "model": "gpt-image2"},
                files={"image": ("a.png", png(64, 64), "image/png")},
            )
    assert response.status_code == 404, response.text
    check_schema("ErrorResponse", response.json())
    assert response.json() == {
        "error": {
            "message": "The model `gpt-image2` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    assert response.headers["x-request-id"].startswith("req_")


async def test_the_official_client_sees_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.images.generate(model="dall-e-4", prompt="p")
    assert caught.value.code == "model_not_found"


async def test_extra_models_are_served_like_the_newest_gpt_model() -> None:
    config = EmulatorConfig(api_key=API_KEY, extra_models=frozenset({"gpt-image-9"}))
    async with Emulator(config) as emulator:
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url, max_retries=0)
        result = await client.images.generate(model="gpt-image-9", prompt="p", output_format="gif")
        assert result.data and result.data[0].b64_json
        with pytest.raises(openai.NotFoundError):
            await client.images.generate(model="gpt-image-8", prompt="p")


async def test_file_rules(client: openai.AsyncOpenAI) -> None:
    cases = [
        (
            {"model": "dall-e-2", "image": ("a.png", png(64, 32), "image/png")},
            "invalid_image_dimensions",
        ),
        (
            {"model": "gpt-image-1", "image": ("a.png", b"not an image", "image/png")},
            "invalid_image_format",
        ),
        (
            {
                "model": "gpt-image-1",
                "image": ("a.png", png(64, 64), "application/octet-stream"),
            },
            "unsupported_file_mimetype",
        ),
        (
            {
                "model": "gpt-image-1",
                "image": ("a.png", png(64, 64), "image/png"),
                "mask": ("m.png", png(32, 32), "image/png"),
            },
            "invalid_image_dimensions",
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.images.edit(prompt="p", **kwargs)  # type: ignore[call-overload]
        assert caught.value.code == code
    with pytest.raises(openai.BadRequestError) as variation:
        await client.images.create_variation(
            image=("a.png", png(64, 64), "image/png"), model="gpt-image-1"
        )
    assert variation.value.param == "model"


async def test_gif_edit_with_a_mask_is_refused(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    image = ("a.png", png(256, 256), "image/png")
    mask = ("m.png", png(256, 256, (0, 0, 0, 0)), "image/png")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.edit(
            model="gpt-image-2.5-flare", prompt="p", image=image, mask=mask, output_format="gif"
        )
    assert (caught.value.param, caught.value.code) == ("mask", "invalid_value")
    assert "gif" in caught.value.message
    check_schema("ErrorResponse", caught.value.response.json())
    served = await client.images.edit(
        model="gpt-image-2.5-flare", prompt="p", image=image, output_format="gif", size="256x256"
    )
    assert served.data and served.output_format == "gif"


async def test_complexity_without_a_model_is_a_gpt_generation(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post(
            "/images/generations",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"prompt": "p", "complexity": "low", "size": "1024x1024"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["total_tokens"] > 0  # GPT image models report usage


async def test_unknown_path_and_malformed_json(emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=headers) as http:
        missing = await http.get("/images/generations")
        broken = await http.post("/images/generations", content=b"{not json")
    assert missing.status_code == 404 and "Invalid URL" in missing.json()["error"]["message"]
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"


async def test_request_ids_are_unique(client: openai.AsyncOpenAI) -> None:
    ids = set()
    for _ in range(3):
        raw = await client.images.with_raw_response.generate(model="gpt-image-1", prompt="p")
        ids.add(raw.headers["x-request-id"])
    assert len(ids) == 3


async def test_urls_expire() -> None:
    now = [1000.0]
    async with Emulator(EmulatorConfig(url_ttl_s=3600), clock=lambda: now[0]) as emulator:
        client = openai.AsyncOpenAI(api_key="k", base_url=emulator.base_url, max_retries=0)
        result = await client.images.generate(model="dall-e-2", prompt="p", size="256x256")
        assert result.data and result.data[0].url
        async with httpx.AsyncClient() as http:
            assert (await http.get(result.data[0].url)).status_code == 200
            now[0] += 3601
            assert (await http.get(result.data[0].url)).status_code == 403
            assert (
                await http.get(emulator.origin + "/_emulator/images/nope.png")
            ).status_code == 404


async def test_journal_over_http_and_reset(emulator: Emulator, client: openai.AsyncOpenAI) -> None:
    await client.images.edit(
        model="gpt-image-1",
        image=[
            ("a.png", png(32, 32), "image/png"),
            ("b.png", png(32, 32), "image/png"),
        ],
        prompt="two",
        n=2,
    )
    async with httpx.AsyncClient(base_url=emulator.origin) as http:
        entries = (await http.get("/_emulator/requests")).json()
        assert entries[-1]["path"] == "/v1/images/edits"
        assert ["n", "2"] in entries[-1]["form"]
        assert [f["field"] for f in entries[-1]["files"]] == ["image[]", "image[]"]
        assert entries[-1]["headers"]["Authorization"] == "<redacted>"
        assert (await http.post("/_emulator/reset")).status_code == 200
        assert (await http.get("/_emulator/requests")).json() == []
    json.dumps(emulator.journal.to_json())


async def test_cached_renders_keep_identities() -> None:
    async with Emulator(EmulatorConfig(cached_renders=True)) as emulator:
        client = openai.AsyncOpenAI(api_key="k", base_url=emulator.base_url, max_retries=0)
        for prompt in ("one", "two"):
            result = await client.images.generate(model="gpt-image-1", prompt=prompt, n=2)
            assert result.data
            for index, item in enumerate(result.data):
                data = base64.b64decode(item.b64_json or "")
                assert read_identity(data) == identity(prompt, index)


def test_cli_registers_the_emulator_command() -> None:
    args = build_parser().parse_args(
        ["emulator", "--host", "127.0.0.1", "--port", "0", "--latency-ms", "5", "--cached-renders"]
    )
    assert callable(args.handler) and args.port == 0 and args.cached_renders
    extra = build_parser().parse_args(
        ["emulator", "--extra-model", "gpt-image-9", "--extra-model", "my-model"]
    )
    assert extra.extra_model == ["gpt-image-9", "my-model"]
    bad = build_parser().parse_args(["emulator", "--faults", "nonsense"])
    assert bad.handler(bad) == 2
