"""Each fault mode, observed through the official client (or raw HTTP where needed)."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from dataclasses import dataclass

import httpx
import openai
import pytest
from emulator_support import API_KEY, SchemaCheck

from imagegate_server.emulator import Emulator, EmulatorConfig, LatencyModel
from imagegate_server.emulator.faults import FaultInjector, FaultSyntaxError

FAULT = "x-emulator-fault"


def fault(text: str) -> dict[str, str]:
    return {FAULT: text}


async def generate(client: openai.AsyncOpenAI, faults: str) -> openai.types.ImagesResponse:
    return await client.images.generate(
        model="gpt-image-1", prompt="p", size="1024x1024", extra_headers=fault(faults)
    )


async def test_429_with_retry_after(client: openai.AsyncOpenAI, check_schema: SchemaCheck) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await generate(client, "429;retry-after=2")
    response = caught.value.response
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    check_schema("ErrorResponse", response.json())
    assert caught.value.code == "rate_limit_exceeded"


async def test_429_with_retry_after_ms(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await generate(client, "429;retry-after-ms=1500")
    assert caught.value.response.headers["retry-after-ms"] == "1500"


async def test_insufficient_quota(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await generate(client, "quota")
    assert caught.value.code == "insufficient_quota" and caught.value.type == "insufficient_quota"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        ("500", openai.InternalServerError),
        ("502", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("401", openai.AuthenticationError),
        ("403", openai.PermissionDeniedError),
        ("404", openai.NotFoundError),
    ],
)
async def test_status_faults(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck, status: str, exception: type[Exception]
) -> None:
    with pytest.raises(exception) as caught:
        await generate(client, status)
    assert isinstance(caught.value, openai.APIStatusError)
    assert caught.value.status_code == int(status)
    check_schema("ErrorResponse", caught.value.response.json())


async def test_moderation_blocked(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await generate(client, "moderation")
    assert caught.value.code == "moderation_blocked"


async def test_reset_mid_body(client: openai.AsyncOpenAI, emulator: Emulator) -> None:
    with pytest.raises(openai.APIConnectionError):
        await generate(client, "reset;after=100")
    assert emulator.journal.entries[-1].has_event("connection_reset_sent")


async def test_reset_mid_stream(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        with pytest.raises(httpx.TransportError):
            await http.post(
                "/images/generations",
                headers={"Authorization": f"Bearer {API_KEY}", FAULT: "reset;after=200"},
                json={"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 2},
            )


async def test_delay_slow_body_and_latency_still_succeed(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    result = await generate(
        client, "delay;ms=20, slow;bytes=65536;ms=1, latency;ms=10;jitter-ms=10"
    )
    assert result.data and result.data[0].b64_json
    events = [e for e in emulator.journal.entries[-1].events if e.kind == "fault"]
    assert events[0].detail == "delay;ms=20, slow;bytes=65536;ms=1, latency;ms=10;jitter-ms=10"


@dataclass
class Timed:
    """When a response's parts arrived, in seconds after the request was sent."""

    headers_s: float
    arrivals: list[tuple[float, int]]
    """(seconds, bytes) per chunk read from the socket."""

    @property
    def size(self) -> int:
        return sum(size for _, size in self.arrivals)


async def timed_generation(emulator: Emulator, faults: str | None) -> Timed:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if faults is not None:
        headers[FAULT] = faults
    body = {"model": "dall-e-2", "prompt": "p", "size": "256x256", "response_format": "b64_json"}
    async with httpx.AsyncClient(base_url=emulator.base_url, timeout=60) as http:
        started = time.monotonic()
        async with http.stream("POST", "/images/generations", headers=headers, json=body) as r:
            assert r.status_code == 200
            headers_s = time.monotonic() - started
            arrivals = [(time.monotonic() - started, len(c)) async for c in r.aiter_raw()]
    return Timed(headers_s, arrivals)


# Timing assertions are lower bounds only: a loaded machine can make things slower,
# never faster than the emulator's own sleeps.
@pytest.mark.parametrize("faults", ["delay;ms=400", "latency;ms=400"])
async def test_delay_and_latency_hold_back_the_first_byte(emulator: Emulator, faults: str) -> None:
    timed = await timed_generation(emulator, faults)
    assert timed.headers_s >= 0.4


async def test_slow_body_trickles_in_chunks(emulator: Emulator) -> None:
    chunk, interval = 1024, 0.03
    timed = await timed_generation(emulator, f"slow;bytes={chunk};ms={interval * 1000:.0f}")
    writes = math.ceil(timed.size / chunk)
    assert writes >= 5  # the body is big enough for the assertions below to mean much
    # The server sleeps after every chunk, so the last byte cannot come sooner than this.
    assert timed.arrivals[-1][0] >= (writes - 1) * interval * 0.9
    # ... and the bytes came in several separate arrivals spread over time, not at once.
    assert len(timed.arrivals) >= 3
    assert timed.arrivals[-1][0] - timed.arrivals[0][0] >= interval
    assert max(size for _, size in timed.arrivals) < timed.size


async def test_configured_latency_applies_to_each_request() -> None:
    config = EmulatorConfig(api_key=API_KEY, latency=LatencyModel(fixed_s=0.3, jitter_s=0.2))
    async with Emulator(config) as emulator:
        for _ in range(2):
            assert (await timed_generation(emulator, None)).headers_s >= 0.3


def test_jitter_spreads_latency_over_its_range() -> None:
    model = FaultInjector().plan("latency;ms=10000;jitter-ms=110000").latency
    assert model == LatencyModel(fixed_s=10, jitter_s=110)
    samples = [model.sample(random.Random(seed)) for seed in range(300)]
    assert all(10 <= sample < 120 for sample in samples)
    assert len(set(samples)) > 250  # varies from request to request
    assert min(samples) < 10 + 110 * 0.1 and max(samples) > 10 + 110 * 0.9  # covers the range
    assert {LatencyModel(fixed_s=3).sample(random.Random(seed)) for seed in range(20)} == {3}


async def test_fail_first_k_then_succeed_with_client_retries(emulator: Emulator) -> None:
    retrying = openai.AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url, max_retries=2)
    key = uuid.uuid4().hex
    result = await retrying.images.generate(
        model="gpt-image-1",
        prompt="p",
        extra_headers=fault(f"429;retry-after-ms=1;first=2;key={key}"),
    )
    assert result.data
    statuses = [e.status for e in emulator.journal.by_path("/v1/images/generations")]
    assert statuses == [429, 429, 200]


async def test_configured_faults_and_runtime_changes() -> None:
    config = EmulatorConfig(api_key=API_KEY, default_faults="503")
    async with Emulator(config) as emulator:
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url, max_retries=0)
        with pytest.raises(openai.InternalServerError):
            await client.images.generate(model="gpt-image-1", prompt="p")
        # A request header replaces the configured faults ("" = none).
        assert (await generate(client, "")).data
        emulator.set_faults("")
        assert (await client.images.generate(model="gpt-image-1", prompt="p")).data
        async with httpx.AsyncClient(base_url=emulator.origin) as http:
            assert (await http.post("/_emulator/faults", json={"faults": "502"})).status_code == 200
            bad = await http.post("/_emulator/faults", json={"faults": "explode"})
            assert bad.status_code == 400
        with pytest.raises(openai.InternalServerError) as caught:
            await client.images.generate(model="gpt-image-1", prompt="p")
        assert caught.value.status_code == 502


async def test_capacity_latency_configuration_applies_to_every_request() -> None:
    # The latency model is observable without timing: a 30 s request that the client
    # abandons is journalled as a disconnect, never as a finished 200.
    config = EmulatorConfig(api_key=API_KEY, latency=LatencyModel(fixed_s=30))
    async with Emulator(config) as emulator, httpx.AsyncClient(base_url=emulator.base_url) as http:
        task = asyncio.create_task(
            http.post(
                "/images/generations",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={"model": "gpt-image-1", "prompt": "slow"},
            )
        )
        await emulator.journal.wait_for(lambda entries: any(e.body_kind == "json" for e in entries))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await emulator.journal.wait_for(
            lambda entries: entries[-1].has_event("client_disconnected")
        )
        assert emulator.journal.entries[-1].status is None


async def test_invalid_fault_syntax_is_a_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await generate(client, "429;retry-after=soon")
    assert caught.value.param == FAULT


@pytest.mark.parametrize(
    ("status", "code"), [(400, "invalid_value"), (413, "request_too_large"), (422, "invalid_value")]
)
async def test_400_413_and_422_faults_are_openai_shaped(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck, status: int, code: str
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await generate(client, str(status))
    assert caught.value.status_code == status and caught.value.code == code
    assert caught.value.param is None  # the fault's body, not a refusal of its syntax
    check_schema("ErrorResponse", caught.value.response.json())


async def test_x_should_retry_fault_sets_the_header(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        for verdict in ("true", "false"):
            response = await http.post(
                "/images/generations",
                headers={
                    "Authorization": f"Bearer {API_KEY}",
                    FAULT: f"503;x-should-retry={verdict}",
                },
                json={"model": "gpt-image-1", "prompt": "p"},
            )
            assert response.status_code == 503
            assert response.headers["x-should-retry"] == verdict


async def _stream_events(emulator: Emulator, faults: str) -> list[str]:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post(
            "/images/generations",
            headers={"Authorization": f"Bearer {API_KEY}", FAULT: faults},
            json={"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 2},
        )
    assert response.status_code == 200
    return [line for line in response.text.splitlines() if line.startswith("event:")]


async def test_stream_error_faults_end_the_stream_with_an_error_event(
    emulator: Emulator,
) -> None:
    events = await _stream_events(emulator, "stream-error;after=1")
    assert events == ["event: image_generation.partial_image", "event: error"]
    assert await _stream_events(emulator, "stream-moderation") == ["event: error"]


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        ("stream-moderation", "moderation_blocked"),
        # A long code reaches the event too (code-len=, for the gateway's bounds).
        ("stream-moderation;code-len=40", "moderation_blocked_" + "x" * 21),
    ],
)
async def test_stream_moderation_event_carries_openai_error_fields(
    emulator: Emulator, faults: str, code: str
) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post(
            "/images/generations",
            headers={"Authorization": f"Bearer {API_KEY}", FAULT: faults},
            json={"model": "gpt-image-1", "prompt": "p", "stream": True},
        )
    data = next(line for line in response.text.splitlines() if line.startswith("data:"))
    error = json.loads(data.removeprefix("data: "))["error"]
    assert error["code"] == code
    assert error["type"] == "image_generation_user_error"


async def test_long_code_and_param_fault_stretches_the_error_fields(
    client: openai.AsyncOpenAI, check_schema: SchemaCheck
) -> None:
    # What an upstream that breaks callers' metadata limits sends (issue 20): a body
    # that is still OpenAI-shaped, with code and param of exactly the asked length.
    with pytest.raises(openai.BadRequestError) as caught:
        await generate(client, "400;code-len=5000;param-len=5000")
    error = caught.value
    assert isinstance(error.code, str) and isinstance(error.param, str)
    assert len(error.code) == 5000 and error.code.startswith("invalid_value_xxx")
    assert len(error.param) == 5000 and error.param.startswith("prompt_xxx")
    assert error.response.headers["x-request-id"]
    check_schema("ErrorResponse", error.response.json())


async def test_long_code_of_an_error_without_code_stretches_its_type(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await generate(client, "500;code-len=300")
    assert caught.value.code == "server_error_" + "x" * 287
    assert caught.value.param is None


async def test_long_fields_set_as_default_faults_over_http(emulator: Emulator) -> None:
    # The way a test behind a gateway sets it: the gateway forwards no caller header.
    async with httpx.AsyncClient(base_url=emulator.origin) as http:
        response = await http.post("/_emulator/faults", json={"faults": "quota;param-len=64"})
        assert response.status_code == 200
        answer = await http.post(
            "/v1/images/generations",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "gpt-image-1", "prompt": "p"},
        )
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "insufficient_quota"
    assert answer.json()["error"]["param"] == "prompt_" + "x" * 57


@pytest.mark.parametrize(
    "text",
    [
        "503;x-should-retry=maybe",
        "stream-error;after=x",
        "418",
        "400;code-len=long",
        "400;param-len=-1",
        "400;code-len=1048577",  # over the 1 MiB bound: the emulator holds it per request
        "delay;ms=1;code-len=10",  # no error to stretch
    ],
)
def test_new_fault_syntax_is_checked(text: str) -> None:
    with pytest.raises(FaultSyntaxError):
        FaultInjector.check(text)
