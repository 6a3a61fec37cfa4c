"""The emulator as an Azure OpenAI resource, driven by the official AzureOpenAI client:
Azure's routes, its api-key header, its error shapes and what it refuses."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from support.images import png

from imagegate_server.emulator import Emulator, EmulatorConfig

KEY = "0123456789abcdef0123456789abcdef"
VERSION = "2025-04-01-preview"


@pytest.fixture
async def azure() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        api_key=KEY, cached_renders=True, azure=True, azure_deployments={"img-eu": "gpt-image-2"}
    )
    async with Emulator(config) as running:
        yield running


def _client(emulator: Emulator, **options: object) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=emulator.base_url,
        api_key=KEY,
        api_version=VERSION,
        max_retries=0,
        timeout=30,
        **options,  # type: ignore[arg-type]
    )


async def test_generations_and_edits_on_the_deployments_route(azure: Emulator) -> None:
    client = _client(azure)
    made = await client.images.generate(
        model="img-eu", prompt="a fox", size="1024x1024", quality="low"
    )
    assert made.data and base64.b64decode(made.data[0].b64_json or "").startswith(b"\x89PNG")
    edited = await client.images.edit(
        model="img-eu", image=("cat.png", png(64, 64), "image/png"), prompt="a hat"
    )
    assert edited.data
    generation, edit = azure.journal.entries
    assert generation.path == "/openai/deployments/img-eu/images/generations"
    assert edit.path == "/openai/deployments/img-eu/images/edits"
    assert generation.headers["api-key"] == "<redacted>"
    assert "Authorization" not in generation.headers


async def test_the_v1_route_takes_the_deployment_as_the_model(azure: Emulator) -> None:
    async with httpx.AsyncClient(base_url=azure.base_url) as http:
        answer = await http.post(
            "/openai/v1/images/generations?api-version=preview",
            headers={"Authorization": f"Bearer {KEY}"},  # an Entra ID token, say
            json={"model": "img-eu", "prompt": "a fox", "quality": "low"},
        )
        assert answer.status_code == 200, answer.text
        unknown = await http.post(
            "/openai/v1/images/generations?api-version=preview",
            headers={"api-key": KEY},
            json={"model": "gpt-image-2", "prompt": "a fox"},
        )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "DeploymentNotFound"


async def test_azure_errors_have_azures_shapes(azure: Emulator) -> None:
    async with httpx.AsyncClient(base_url=azure.base_url) as http:
        path = f"/openai/deployments/img-eu/images/generations?api-version={VERSION}"
        body = {"prompt": "a fox"}
        wrong_key = await http.post(path, headers={"api-key": "nope"}, json=body)
        no_version = await http.post(
            "/openai/deployments/img-eu/images/generations", headers={"api-key": KEY}, json=body
        )
        filtered = await http.post(
            path, headers={"api-key": KEY, "x-emulator-fault": "moderation"}, json=body
        )
        limited = await http.post(
            path, headers={"api-key": KEY, "x-emulator-fault": "429;retry-after=7"}, json=body
        )
        webp = await http.post(
            path, headers={"api-key": KEY}, json={**body, "output_format": "webp"}
        )
    assert wrong_key.status_code == 401 and wrong_key.json()["error"]["code"] == "401"
    assert no_version.status_code == 404
    assert filtered.status_code == 400
    error = filtered.json()["error"]
    assert error["code"] == "contentFilter"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "429"
    assert limited.headers["retry-after"] == "7"
    assert webp.status_code == 400 and webp.json()["error"]["param"] == "output_format"


async def test_openais_routes_are_not_served_in_azure_mode(azure: Emulator) -> None:
    async with httpx.AsyncClient(base_url=azure.base_url) as http:
        answer = await http.post(
            "/v1/images/generations", headers={"Authorization": f"Bearer {KEY}"}, json={}
        )
        variations = await http.post(
            f"/openai/deployments/img-eu/images/variations?api-version={VERSION}",
            headers={"api-key": KEY},
        )
    assert answer.status_code == 404 and variations.status_code == 404


async def test_an_early_fault_answers_before_the_body_is_read() -> None:
    config = EmulatorConfig(default_faults="503;early=true")
    async with Emulator(config) as emulator, httpx.AsyncClient(base_url=emulator.base_url) as http:
        answer = await http.post(
            "/images/generations", headers={"Authorization": "Bearer k"}, json={"x": 1}
        )
    assert answer.status_code == 503
    (entry,) = emulator.journal.entries
    assert entry.body_kind == "empty" and entry.status == 503
