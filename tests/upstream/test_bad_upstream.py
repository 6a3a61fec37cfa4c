"""A misbehaving upstream, end to end: a real gateway in front of the bad server of
``tests/support/bad_upstream.py``, called over gRPC by a client with a budget.

Every answer the gateway cannot take is UNAVAILABLE with an ErrorInfo reason, counted,
and charged as OpenAI would bill it: the request reached the model, so its estimate
(an error answer bills nothing). A usage that cannot be trusted leaves the images to
the caller and charges the estimate. Memory peaks of the same cases are measured
against a gateway process in ``test_bad_upstream_memory.py``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import tomli_w
from google.rpc import error_details_pb2, status_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc, results_pb2
from support.bad_upstream import (
    KEY,
    MIB,
    SSE_HEADER,
    BadUpstream,
    Reply,
    answer,
    events,
    gzipped,
    huge_answer,
    huge_error,
    huge_event,
    json_reply,
    reply,
    slow,
    usage,
)
from support.gateways import started_gateways
from support.images import png

from imagegate_server.clients.tokens import generate
from imagegate_server.gateway.server import Gateway
from imagegate_server.pricing import load_prices

PROMPT = "a lighthouse"
PARAMETERS = params_pb2.GenerationParameters(
    prompt=PROMPT, model="gpt-image-2", size="1024x1024", quality=params_pb2.QUALITY_LOW
)
# What the gateway reserves for, and charges when it has nothing better: the estimate.
ESTIMATE = load_prices().estimate_micros(
    "gpt-image-2", quality="low", size="1024x1024", n=1, prompt_chars=len(PROMPT)
)
# A 1024x1024 PNG answer may be 4 B/px + 1 MiB decoded: about 7 MB of base64.
HUGE = 400 * MIB


@dataclass
class Setup:
    bad: BadUpstream
    gateway: Gateway
    images: images_service_pb2_grpc.ImagesServiceStub
    quota: quota_pb2_grpc.QuotaServiceStub
    metadata: tuple[tuple[str, str], ...]

    async def create(self, deadline_s: float = 60) -> results_pb2.ImagesResult:
        request = pb.CreateImageRequest(parameters=PARAMETERS)  # type: ignore[arg-type]
        reply = await self.images.CreateImage(request, metadata=self.metadata, timeout=deadline_s)
        return reply.result

    async def stream(self) -> results_pb2.ImagesResult:
        request = pb.CreateImageStreamRequest(parameters=PARAMETERS)
        result = None
        async for event in self.images.CreateImageStream(
            request, metadata=self.metadata, timeout=60
        ):
            if event.HasField("result"):
                result = event.result
        assert result is not None
        return result

    async def refused(
        self, *, stream: bool = False, deadline_s: float = 60
    ) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await (self.stream() if stream else self.create(deadline_s))
        return caught.value

    async def spent(self) -> int:
        quota = await self.quota.GetQuota(quota_pb2.GetQuotaRequest(), metadata=self.metadata)
        assert quota.reserved_usd_micros == 0  # every call settled
        return quota.spent_today_usd_micros

    def counted(self, metric: str, **labels: str) -> float:
        value = self.gateway.metrics.registry.get_sample_value(metric, labels)
        return value or 0.0


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    token = generate()
    clients = tmp_path / "clients.toml"
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    entry = {"id": token.token_id, "sha256": token.sha256, "created": created}
    document = {"clients": {"team": {"daily_budget_usd": 100, "tokens": [entry]}}}
    clients.write_bytes(tomli_w.dumps(document).encode())
    async with BadUpstream() as bad, started_gateways(KEY, bad.base_url) as start:
        gateway = await start(clients_file=clients, retry_backoff_s=0.01)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            yield Setup(
                bad,
                gateway,
                images_service_pb2_grpc.ImagesServiceStub(channel),
                quota_pb2_grpc.QuotaServiceStub(channel),
                (("authorization", f"Bearer {token.token}"),),
            )


def status_of(error: grpc.aio.AioRpcError | grpc.RpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no status details")


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo:
    for packed in status_of(error).details:
        info = error_details_pb2.ErrorInfo()
        if packed.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo")


async def test_a_good_answer_is_taken(setup: Setup) -> None:
    # The baseline of every case below: the same server, an answer OpenAI could send.
    setup.bad.script(json_reply(answer(usage())))
    result = await setup.create()
    assert result.images[0].data == png()
    assert result.cost.basis == results_pb2.COST_BASIS_USAGE
    assert await setup.spent() == result.cost.usd_micros > 0


ENCODED = json_reply(answer(usage()), 200, ("content-encoding", "gzip"))
REFUSED_ANSWERS: dict[str, tuple[Reply, str]] = {
    # 407 KB of gzip that unpack to 400 MB took the gateway to 1,200 MB.
    "gzip bomb": (
        reply(200, lambda: gzipped("answer", HUGE), ("content-encoding", "gzip"), chunked=True),
        "UPSTREAM_ENCODING",
    ),
    "br, a coding not asked for": (
        json_reply(answer(usage()), 200, ("content-encoding", "br")),
        "UPSTREAM_ENCODING",
    ),
    "400 MB declared": (reply(200, huge_answer(HUGE), length=HUGE), "UPSTREAM_ANSWER_TOO_LARGE"),
    "400 MB chunked": (reply(200, huge_answer(HUGE), chunked=True), "UPSTREAM_ANSWER_TOO_LARGE"),
    "400 MB to the close": (reply(200, huge_answer(HUGE)), "UPSTREAM_ANSWER_TOO_LARGE"),
    "two images for n=1": (
        json_reply({"data": [answer()["data"][0]] * 2}),  # type: ignore[index]
        "UPSTREAM_ANSWER_TOO_LARGE",
    ),
    "{}": (json_reply({}), "UPSTREAM_NO_IMAGES"),
    "no data": (json_reply({"data": [], "usage": usage()}), "UPSTREAM_NO_IMAGES"),
    "zeros for an image": (json_reply(answer(usage(), bytes(3000))), "UPSTREAM_BAD_IMAGE"),
    "a JPEG for png": (json_reply(answer(usage(), b"\xff\xd8\xff\xe0" * 9)), "UPSTREAM_BAD_IMAGE"),
    "not JSON": (json_reply(b"<html>busy</html>"), "UPSTREAM_BAD_ANSWER"),
}


@pytest.mark.parametrize("case", REFUSED_ANSWERS)
async def test_an_answer_past_a_bound_is_unavailable_counted_and_charged_its_estimate(
    setup: Setup, case: str
) -> None:
    bad_reply, reason = REFUSED_ANSWERS[case]
    setup.bad.script(bad_reply)
    error = await setup.refused()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(error)
    assert (info.reason, info.domain) == (reason, "imagegate")
    assert len(setup.bad.requests) == 1  # never retried: it reached the model
    assert setup.counted("imagegate_upstream_answers_rejected_total", reason=reason) == 1
    assert await setup.spent() == ESTIMATE  # as OpenAI bills a generation it made
    # A bound refuses the rest of the body: its connection is closed, not drained.
    assert setup.bad.sent[0].body_bytes < 64 * MIB


async def test_a_body_that_never_ends_is_cut_at_the_bound(setup: Setup) -> None:
    endless = reply(200, huge_answer(100 * 1024 * MIB), chunked=True)  # 100 GB
    setup.bad.script(endless)
    error = await setup.refused()
    assert error_info(error).reason == "UPSTREAM_ANSWER_TOO_LARGE"
    assert not setup.bad.sent[0].finished and setup.bad.sent[0].body_bytes < 64 * MIB


async def test_a_body_that_trickles_ends_at_the_callers_deadline_and_is_charged(
    setup: Setup,
) -> None:
    setup.bad.script(reply(200, slow(b"A", 120), length=10_000, pause_s=0.5))
    error = await setup.refused(deadline_s=3)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.2)  # the settle follows the caller's deadline
    assert await setup.spent() == ESTIMATE


@pytest.mark.parametrize(
    "bad_reply",
    [
        reply(500, huge_error(HUGE), length=HUGE),  # 400 MB: 2,332 MB of RSS once
        reply(500, huge_error(HUGE), chunked=True),
        reply(500, lambda: gzipped("error", HUGE), ("content-encoding", "gzip"), chunked=True),
    ],
    ids=["declared", "chunked", "gzipped"],
)
async def test_a_huge_error_body_is_read_to_its_cap_and_relayed_as_its_status(
    setup: Setup, bad_reply: Reply
) -> None:
    setup.bad.script(bad_reply)
    error = await setup.refused()
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # a 5xx, as any
    assert error_info(error).metadata["upstream_status"] == "500"
    assert len(error.details() or "") <= 512
    assert setup.bad.sent[0].body_bytes < 64 * MIB
    assert await setup.spent() == 0  # an error answer bills nothing


async def test_an_error_body_that_trickles_still_gives_the_real_status(setup: Setup) -> None:
    # The status line says it all: the body is not awaited for the caller's deadline.
    setup.bad.script(reply(503, slow(b" ", 300), length=10_000, pause_s=0.5))
    error = await setup.refused(deadline_s=60)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(error).metadata["upstream_status"] == "503"


BAD_USAGES = {
    "missing": None,
    "negative": usage(output_tokens=-5),
    "text": usage(output_tokens="4160"),
    "float": usage(output_tokens=4160.5),
    "1e18 as a float": usage(output_tokens=1e18),
    "1e18": usage(output_tokens=10**18),
    "1e15": usage(output_tokens=10**15),  # charged $30,000,000,000 once
    "1e20": usage(input_tokens=10**20),
    "beyond the model": usage(output_tokens=1_000_000),
    "not an object": [1, 2],
}
# Counts above 10^12 are invalid whatever the call; "beyond the model" is this call's.
KIND = {"missing": "missing", "beyond the model": "implausible"}


@pytest.mark.parametrize("case", BAD_USAGES)
async def test_a_usage_that_cannot_be_trusted_is_charged_the_estimate(
    setup: Setup, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = answer(BAD_USAGES[case]) if case != "not an object" else answer(usage=[1, 2])
    setup.bad.script(json_reply(document))
    caplog.set_level(logging.WARNING, "imagegate_server.gateway.mapping.usage")
    for _ in range(2):
        result = await setup.create()
        assert result.images[0].data == png()  # the caller keeps the images it was billed
        assert result.cost.basis == results_pb2.COST_BASIS_ESTIMATE
        assert result.cost.usd_micros == ESTIMATE and not result.HasField("usage")
    assert await setup.spent() == 2 * ESTIMATE
    kind = KIND.get(case, "invalid")
    assert setup.counted("imagegate_upstream_usage_anomalies_total", kind=kind) == 2
    logged = [r for r in caplog.records if r.name == "imagegate_server.gateway.mapping.usage"]
    assert len(logged) == 1  # once per upstream, not per call
    assert logged[0].anomaly == kind
    assert "1000000000000000000" not in logged[0].problem


async def test_a_plausible_usage_is_charged_as_reported(setup: Setup) -> None:
    setup.bad.script(json_reply(answer(usage(output_tokens=20_000))))  # 5x the estimate's
    result = await setup.create()
    assert result.cost.basis == results_pb2.COST_BASIS_USAGE
    assert result.usage.output_tokens == 20_000
    assert await setup.spent() == result.cost.usd_micros > ESTIMATE


def _completed(image: bytes | None = None, **fields: object) -> dict[str, object]:
    document = answer(usage(), image)["data"][0]  # type: ignore[index]
    return {"type": "image_generation.completed", **document, **fields}  # type: ignore[dict-item]


REFUSED_STREAMS: dict[str, tuple[Reply, str]] = {
    # A 300 MB "image" of zeros in one event was relayed as OK.
    "300 MB event": (
        reply(200, huge_event(300 * MIB), SSE_HEADER, chunked=True),
        "UPSTREAM_ANSWER_TOO_LARGE",
    ),
    "zeros for an image": (
        reply(200, events(_completed(bytes(3000))), SSE_HEADER, chunked=True),
        "UPSTREAM_BAD_IMAGE",
    ),
    "two completed for n=1": (
        reply(200, events(_completed(), _completed()), SSE_HEADER, chunked=True),
        "UPSTREAM_ANSWER_TOO_LARGE",
    ),
    "no image at all": (
        reply(200, events({"type": "image_generation.in_progress"}), SSE_HEADER, chunked=True),
        "UPSTREAM_NO_IMAGES",
    ),
    "gzip": (
        reply(200, events(_completed()), SSE_HEADER, ("content-encoding", "gzip"), chunked=True),
        "UPSTREAM_ENCODING",
    ),
}


@pytest.mark.parametrize("case", REFUSED_STREAMS)
async def test_a_streamed_event_is_checked_as_a_whole_answer_is(setup: Setup, case: str) -> None:
    bad_reply, reason = REFUSED_STREAMS[case]
    setup.bad.script(bad_reply)
    error = await setup.refused(stream=True)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(error).reason == reason
    assert setup.counted("imagegate_upstream_answers_rejected_total", reason=reason) == 1
    assert await setup.spent() == ESTIMATE
    assert setup.bad.sent[0].body_bytes < 64 * MIB


async def test_a_streamed_usage_that_cannot_be_trusted_is_charged_the_estimate(
    setup: Setup,
) -> None:
    setup.bad.script(reply(200, events(_completed(usage=usage(-1))), SSE_HEADER, chunked=True))
    result = await setup.stream()
    assert result.cost.basis == results_pb2.COST_BASIS_ESTIMATE
    assert await setup.spent() == result.cost.usd_micros == ESTIMATE


@pytest.mark.parametrize("letter", ["c", "é", "\U0001f600"])
async def test_a_default_client_gets_the_code_and_ids_of_an_error_with_huge_fields(
    setup: Setup, letter: str
) -> None:
    # 5,000-character code and param were relayed whole: 22 KB of status details, and a
    # default client reported its own RESOURCE_EXHAUSTED without x-request-id.
    long = letter * (5000 // len(letter.encode()))  # 5,000 bytes
    fields = {"code": long, "param": long, "type": long, "message": long}
    document = json.dumps({"error": fields}, ensure_ascii=False).encode()
    upstream_id = "req_" + "7" * 8000 + "\x7f"
    setup.bad.script(json_reply(document, 400, ("x-request-id", upstream_id)))
    request = pb.CreateImageRequest(parameters=PARAMETERS)  # type: ignore[arg-type]

    def call() -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{setup.gateway.port}") as channel:  # defaults
            stub = images_service_pb2_grpc.ImagesServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.CreateImage(request, metadata=setup.metadata, timeout=30)
            return caught.value

    error = await asyncio.to_thread(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert trailers["x-request-id"]
    assert trailers["x-upstream-request-id"] == ("req_" + "7" * 8000)[:128]
    info = error_info(error)
    assert info.reason == letter * (64 // len(letter.encode()))
    assert info.metadata["param"] == letter * (64 // len(letter.encode()))
    size = sum(len(k) + len(v) for k, v in trailers.items())
    size += 3 * len(error.details().encode())  # type: ignore[attr-defined]
    assert size <= 4096  # gRPC's default limits: 8 KiB soft, 16 KiB hard


async def _create(gateway: Gateway, parameters: params_pb2.GenerationParameters) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        try:
            await stub.CreateImage(pb.CreateImageRequest(parameters=parameters), timeout=60)
        except grpc.aio.AioRpcError as error:
            assert error.code() != grpc.StatusCode.UNAVAILABLE or error_info(error).reason
            return error.code()
    return grpc.StatusCode.OK


async def test_a_model_the_table_does_not_know_is_bounded_by_the_operators_cap() -> None:
    unknown = params_pb2.GenerationParameters(prompt=PROMPT, model="gpt-image-9")
    async with BadUpstream() as bad, started_gateways(KEY, bad.base_url) as start:
        gateway = await start(upstream_unknown_model_answer_bytes=1 * MIB)
        bad.script(json_reply(answer(usage(), png() + bytes(600_000))))  # 0.8 MB of base64
        assert await _create(gateway, unknown) == grpc.StatusCode.OK
        bad.script(reply(200, huge_answer(2 * MIB), chunked=True))
        assert await _create(gateway, unknown) == grpc.StatusCode.UNAVAILABLE
        rejected = {"reason": "UPSTREAM_ANSWER_TOO_LARGE"}
        metric = "imagegate_upstream_answers_rejected_total"
        assert gateway.metrics.registry.get_sample_value(metric, rejected) == 1


@pytest.mark.parametrize("case", ["gzip bomb", "400 MB chunked", "zeros for an image"])
async def test_the_bounds_hold_on_the_http2_transport_too(case: str) -> None:
    # IMAGEGATE_HTTP2 reads answers through httpx's own transport, not aiohttp's.
    bad_reply, reason = REFUSED_ANSWERS[case]
    async with BadUpstream() as bad, started_gateways(KEY, bad.base_url) as start:
        gateway = await start(http2=True)
        bad.script(bad_reply)
        assert await _create(gateway, PARAMETERS) == grpc.StatusCode.UNAVAILABLE
        metric = "imagegate_upstream_answers_rejected_total"
        assert gateway.metrics.registry.get_sample_value(metric, {"reason": reason}) == 1
        assert bad.sent[0].body_bytes < 64 * MIB
