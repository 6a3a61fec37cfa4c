"""Traces: a SERVER span per call, a CLIENT span per upstream attempt, and the W3C
trace context from the caller's metadata through to the upstream's request headers.

The gateway exports to the SDK's in-memory exporter; the emulator's journal shows
what the upstream received.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc
from observability_support import add_client, bearer, edit_messages
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from operations_support import OPENAI_KEY
from support.gateways import gateway_settings
from support.images import png

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway
from imagegate_server.tracing.provider import Tracing

GENERATIONS = "/v1/images/generations"
CREATE_IMAGE = "imagegate.v1.ImagesService/CreateImage"
PROMPT = "a lighthouse in fog, secret-prompt-7f3a"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    return tmp_path / "clients.toml"


@pytest.fixture
def token(clients_file: Path) -> str:
    """The bearer token of client ``team-a``."""
    return add_client(clients_file, "team-a")


@pytest.fixture
async def gateway(
    emulator: Emulator, spans: InMemorySpanExporter, clients_file: Path, token: str
) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        OPENAI_KEY,
        emulator.base_url,
        clients_file=clients_file,
        max_retries=1,
        retry_backoff_s=0.01,
    )
    running = Gateway(settings, tracing=Tracing.with_exporter(spans))
    await running.start()
    yield running
    await running.stop(0)


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[images_service_pb2_grpc.ImagesServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield images_service_pb2_grpc.ImagesServiceStub(channel)


def _generation(**fields: Any) -> pb.CreateImageRequest:
    values: dict[str, Any] = {"prompt": PROMPT, "model": "gpt-image-2", **fields}
    return pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(**values))


def _servers(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]


def _clients(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    found = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    return sorted(found, key=lambda s: s.start_time or 0)


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def _sent_context(headers: dict[str, str]) -> tuple[int, int, bool]:
    """(trace id, parent span id, sampled) of the ``traceparent`` the upstream got."""
    value = next(v for k, v in headers.items() if k.lower() == "traceparent")
    version, trace_id, parent_id, flags = value.split("-")
    assert version == "00"
    return int(trace_id, 16), int(parent_id, 16), bool(int(flags, 16) & 1)


def _no_secrets_in(spans: InMemorySpanExporter, *secrets_: str) -> None:
    for span in spans.get_finished_spans():
        values = [span.name, *(str(v) for v in (span.attributes or {}).values())]
        for secret in secrets_:
            assert not any(secret in value for value in values), (span.name, secret)


async def test_a_call_has_a_server_span_on_the_rpc_and_genai_conventions(
    stub: images_service_pb2_grpc.ImagesServiceStub, spans: InMemorySpanExporter, token: str
) -> None:
    reply = await stub.CreateImage(_generation(n=2), metadata=bearer(token), timeout=30)
    result = reply.result
    assert len(result.images) == 2 and result.usage.output_tokens > 0

    (server,) = _servers(spans)
    assert server.name == CREATE_IMAGE
    assert server.status.status_code is StatusCode.UNSET
    attributes = _attributes(server)
    assert attributes == {
        "rpc.system.name": "grpc",
        "rpc.method": CREATE_IMAGE,
        "rpc.status_code": "OK",
        "gen_ai.operation.name": "image_generation",
        "gen_ai.provider.name": "openai",
        "gen_ai.output.type": "image",
        "gen_ai.request.model": "gpt-image-2",
        "gen_ai.request.choice.count": 2,
        "gen_ai.usage.input_tokens": result.usage.input_tokens,
        "gen_ai.usage.output_tokens": result.usage.output_tokens,
        "imagegate.image_count": 2,
        "imagegate.cost_usd": result.cost.usd_micros / 1_000_000,
        "imagegate.client_id": "team-a",
        "imagegate.request_id": attributes["imagegate.request_id"],
        "imagegate.upstream_request_id": attributes["imagegate.upstream_request_id"],
    }
    assert result.cost.usd_micros > 0
    assert server.resource.attributes["service.name"] == "imagegate"
    _no_secrets_in(spans, PROMPT, token, OPENAI_KEY, token.rsplit("_", 1)[1])


async def _trailers_of_a_call(
    stub: images_service_pb2_grpc.ImagesServiceStub, token: str
) -> tuple[tuple[str, str], ...]:
    call = stub.CreateImage(_generation(), metadata=bearer(token), timeout=30)
    await call
    return tuple((k, str(v)) for k, v in await call.trailing_metadata())


async def test_the_request_id_on_the_span_is_the_one_the_caller_gets(
    stub: images_service_pb2_grpc.ImagesServiceStub, spans: InMemorySpanExporter, token: str
) -> None:
    trailers = dict(await _trailers_of_a_call(stub, token))
    (server,) = _servers(spans)
    assert _attributes(server)["imagegate.request_id"] == trailers["x-request-id"]
    assert _attributes(server)["imagegate.upstream_request_id"] == trailers["x-upstream-request-id"]


async def test_an_upstream_failure_makes_both_spans_errors(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    spans: InMemorySpanExporter,
    emulator: Emulator,
    token: str,
) -> None:
    emulator.set_faults("503")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(_generation(), metadata=bearer(token), timeout=30)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE

    (server,) = _servers(spans)
    assert server.status.status_code is StatusCode.ERROR
    attributes = _attributes(server)
    assert attributes["rpc.status_code"] == "UNAVAILABLE"
    assert attributes["error.type"] == "UNAVAILABLE"
    assert attributes["imagegate.image_count"] == 0
    assert "gen_ai.usage.input_tokens" not in attributes
    assert "imagegate.cost_usd" not in attributes
    # A 5xx after the body was sent is not retried (it may have been billed).
    (attempt,) = _clients(spans)
    assert _attributes(attempt)["http.response.status_code"] == 503
    assert _attributes(attempt)["error.type"] == "503"
    assert attempt.status.status_code is StatusCode.ERROR


async def test_a_caller_mistake_is_not_a_server_error_and_reaches_no_upstream(
    stub: images_service_pb2_grpc.ImagesServiceStub, spans: InMemorySpanExporter, token: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateImage(_generation(prompt=""), metadata=bearer(token), timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    (server,) = _servers(spans)
    attributes = _attributes(server)
    assert attributes["rpc.status_code"] == "INVALID_ARGUMENT"
    # The gRPC conventions count only server-side codes as a server span's errors.
    assert "error.type" not in attributes
    assert server.status.status_code is StatusCode.UNSET
    assert _clients(spans) == []


async def test_each_attempt_is_a_child_span_and_sends_its_own_traceparent(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    spans: InMemorySpanExporter,
    emulator: Emulator,
    token: str,
) -> None:
    emulator.set_faults("429;retry-after-ms=10;first=1")
    trace_id, caller_span = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    metadata = (*bearer(token), ("traceparent", _traceparent(trace_id, caller_span)))
    await stub.CreateImage(_generation(), metadata=metadata, timeout=30)

    (server,) = _servers(spans)
    # The server span continues the caller's trace, under the caller's span.
    assert server.context.trace_id == trace_id
    assert server.parent is not None and server.parent.span_id == caller_span
    assert server.parent.is_remote

    first, second = _clients(spans)
    for attempt in (first, second):
        assert attempt.context.trace_id == trace_id
        assert attempt.parent is not None
        assert attempt.parent.span_id == server.context.span_id
        assert attempt.name == "POST /v1/images/generations"
        attributes = _attributes(attempt)
        assert attributes["http.request.method"] == "POST"
        assert attributes["url.full"] == emulator.base_url + "/images/generations"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["gen_ai.operation.name"] == "image_generation"
        assert attributes["gen_ai.request.model"] == "gpt-image-2"
    assert _attributes(first)["http.response.status_code"] == 429
    assert _attributes(first)["error.type"] == "429"
    assert "http.request.resend_count" not in _attributes(first)
    assert _attributes(second)["http.response.status_code"] == 200
    assert _attributes(second)["http.request.resend_count"] == 1
    assert "error.type" not in _attributes(second)
    assert second.status.status_code is StatusCode.UNSET

    # What the upstream received: each attempt's own span as the parent.
    sent = [_sent_context(e.headers) for e in emulator.journal.by_path(GENERATIONS)]
    assert sent == [
        (trace_id, first.context.span_id, True),
        (trace_id, second.context.span_id, True),
    ]


async def test_a_call_without_a_traceparent_starts_its_own_trace(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    spans: InMemorySpanExporter,
    emulator: Emulator,
    token: str,
) -> None:
    await stub.CreateImage(_generation(), metadata=bearer(token), timeout=30)
    (server,) = _servers(spans)
    assert server.parent is None
    (attempt,) = _clients(spans)
    (entry,) = emulator.journal.by_path(GENERATIONS)
    expected = (server.context.trace_id, attempt.context.span_id, True)
    assert _sent_context(entry.headers) == expected


async def test_a_malformed_traceparent_is_ignored(
    stub: images_service_pb2_grpc.ImagesServiceStub, spans: InMemorySpanExporter, token: str
) -> None:
    metadata = (*bearer(token), ("traceparent", "00-not-a-trace-context-01"))
    reply = await stub.CreateImage(_generation(), metadata=metadata, timeout=30)
    assert len(reply.result.images) == 1
    (server,) = _servers(spans)
    assert server.parent is None


async def test_an_edit_is_traced_as_an_image_edit(
    stub: images_service_pb2_grpc.ImagesServiceStub, spans: InMemorySpanExporter, token: str
) -> None:
    reply = await stub.CreateImageEdit(
        iter(edit_messages(PROMPT, png(64, 64, mode="RGB"))), metadata=bearer(token), timeout=30
    )
    assert len(reply.result.images) == 1
    (edit,) = _servers(spans)
    assert edit.name == "imagegate.v1.ImagesService/CreateImageEdit"
    assert _attributes(edit)["gen_ai.operation.name"] == "image_edit"
    assert _attributes(edit)["imagegate.cost_usd"] == reply.result.cost.usd_micros / 1_000_000
    (attempt,) = _clients(spans)
    assert attempt.name == "POST /v1/images/edits"
    assert _attributes(attempt)["gen_ai.operation.name"] == "image_edit"
    assert attempt.parent is not None and attempt.parent.span_id == edit.context.span_id
    _no_secrets_in(spans, PROMPT, token)


async def test_a_streamed_calls_attempt_lasts_until_its_last_event(
    stub: images_service_pb2_grpc.ImagesServiceStub,
    spans: InMemorySpanExporter,
    emulator: Emulator,
    token: str,
) -> None:
    # The emulator trickles the event stream: its headers come at once, its events
    # over hundreds of milliseconds. The attempt's span must cover the events.
    emulator.set_faults("slow;bytes=2048;ms=20")
    request = pb.CreateImageStreamRequest(
        parameters=params_pb2.GenerationParameters(
            prompt=PROMPT, model="gpt-image-2", partial_images=1
        )
    )
    first_message_ns = 0
    messages = []
    async for message in stub.CreateImageStream(request, metadata=bearer(token), timeout=60):
        first_message_ns = first_message_ns or time.time_ns()
        messages.append(message)
    final = messages[-1].result
    assert len(final.images) == 1 and messages[0].HasField("image_chunk")

    (stream,) = _servers(spans)
    assert stream.name == "imagegate.v1.ImagesService/CreateImageStream"
    assert _attributes(stream)["gen_ai.operation.name"] == "image_generation"
    assert _attributes(stream)["imagegate.image_count"] == 1
    assert _attributes(stream)["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    (attempt,) = _clients(spans)
    assert attempt.parent is not None and attempt.parent.span_id == stream.context.span_id
    assert attempt.end_time is not None and stream.end_time is not None
    # Still open when the caller already had the partial image; closed before the call.
    assert first_message_ns < attempt.end_time <= stream.end_time


async def test_quota_calls_have_server_spans_without_genai_attributes(
    gateway: Gateway, spans: InMemorySpanExporter, token: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        quota = quota_pb2_grpc.QuotaServiceStub(channel)
        await quota.GetQuota(quota_pb2.GetQuotaRequest(), metadata=bearer(token), timeout=10)
    (server,) = _servers(spans)
    assert server.name == "imagegate.v1.QuotaService/GetQuota"
    attributes = _attributes(server)
    assert attributes["rpc.status_code"] == "OK"
    assert attributes["imagegate.client_id"] == "team-a"
    assert not any(key.startswith("gen_ai.") for key in attributes)
