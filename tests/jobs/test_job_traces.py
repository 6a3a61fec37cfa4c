"""A job's run is a span linked to the span of the call that submitted it; the run's
upstream request is its child (OpenTelemetry, exported in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.longrunning import operations_pb2
from jobs_support import OPENAI_KEY, generation_job, stubs
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support.gateways import gateway_settings

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway
from imagegate_server.tracing.provider import Tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
async def gateway(spans: InMemorySpanExporter) -> AsyncIterator[Gateway]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as emulator:
        settings = gateway_settings(OPENAI_KEY, emulator.base_url)
        running = Gateway(settings, tracing=Tracing.with_exporter(spans))
        await running.start()
        yield running
        await running.stop(0)


async def test_the_run_links_to_the_submit(gateway: Gateway, spans: InMemorySpanExporter) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        jobs, operations = stubs(channel)
        op = await jobs.SubmitImageJob(generation_job(), timeout=30)
        await operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=op.name), timeout=30
        )
    finished = spans.get_finished_spans()
    (submit,) = [s for s in finished if s.name.endswith("/SubmitImageJob")]
    (run,) = [s for s in finished if s.name == "image job"]
    assert run.kind is SpanKind.CONSUMER
    assert [link.context.span_id for link in run.links] == [submit.context.span_id]
    assert run.context.trace_id != submit.context.trace_id
    assert run.attributes is not None and run.attributes["imagegate.job_state"] == "succeeded"
    attempts = [s for s in finished if s.kind is SpanKind.CLIENT]
    assert attempts and all(a.parent is not None for a in attempts)
    assert {a.parent.span_id for a in attempts if a.parent} == {run.context.span_id}
