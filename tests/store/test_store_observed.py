"""What operators see of the store: its metrics (bytes and objects written, latency,
errors by kind, sweeps, bad links), a span per write, and the gRPC status a failed
write becomes."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from store_support import Clock, store_settings

from imagegate_server.errors import StoreUnavailable
from imagegate_server.gateway.edge.status import DETAILS_KEY, failure
from imagegate_server.metrics import Metrics, exported_names
from imagegate_server.store import (
    CallInfo,
    InProcessLock,
    ResultStore,
    RunningStore,
    StoreLimits,
    Sweeper,
    open_store,
)
from imagegate_server.tracing.provider import Tracing

DAY = datetime.timedelta(days=1)
CALL = CallInfo("acme", "gpt-image-2", "r1")
QUICK = StoreLimits(write_timeout=datetime.timedelta(seconds=0.2))


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def local(tmp_path: Path, metrics: Metrics) -> AsyncIterator[RunningStore]:
    running = await open_store(store_settings("local", tmp_path), observer=metrics.store)
    yield running
    await running.aclose()


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_writes_links_and_failures_are_counted(local: RunningStore, metrics: Metrics) -> None:
    stored = await local.store.store_image(
        b"x" * 1234, content_type="image/png", call=CALL, retention=DAY
    )
    assert value(metrics, "imagegate_store_written_bytes_total", backend="local") == 1234
    assert value(metrics, "imagegate_store_written_objects_total", backend="local") == 1
    assert value(metrics, "imagegate_store_seconds_count", backend="local", operation="put") == 1

    async with httpx.AsyncClient(timeout=30) as http:
        await http.get(stored.link.url)
        await http.get(stored.link.url.replace("signature=", "signature=x"))
    assert value(metrics, "imagegate_store_link_requests_total", status="200") == 1
    assert value(metrics, "imagegate_store_link_requests_total", status="403") == 1

    await time_out_a_write(ResultStore(local.store.backend, QUICK, observer=metrics.store))
    errors = "imagegate_store_errors_total"
    assert value(metrics, errors, backend="local", operation="put", kind="timeout") == 1


async def test_sweeps_are_counted(local: RunningStore, metrics: Metrics, clock: Clock) -> None:
    store = ResultStore(local.store.backend, clock=clock)
    for _ in range(3):
        await store.put(b"y" * 10, content_type="image/png", call=CALL, retention=DAY)
    clock.advance(days=2)
    await Sweeper(
        store, InProcessLock(), interval_s=60, batch=10, observer=metrics.store
    ).sweep_once()
    assert value(metrics, "imagegate_store_sweeps_total", outcome="swept") == 1
    assert value(metrics, "imagegate_store_swept_objects_total") == 3
    assert value(metrics, "imagegate_store_swept_bytes_total") == 30


def test_the_store_metrics_are_exported() -> None:
    assert {
        "imagegate_store_written_bytes_total",
        "imagegate_store_written_objects_total",
        "imagegate_store_seconds",
        "imagegate_store_errors_total",
        "imagegate_store_sweeps_total",
        "imagegate_store_swept_objects_total",
        "imagegate_store_swept_bytes_total",
        "imagegate_store_link_requests_total",
    } <= exported_names(Metrics().registry)


async def test_each_write_is_a_span_naming_the_object_not_its_link(local: RunningStore) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_exporter(exporter)
    try:
        store = ResultStore(local.store.backend, tracer=tracing.store)
        stored = await store.put(b"z" * 99, content_type="image/png", call=CALL, retention=DAY)
        [span] = exporter.get_finished_spans()
        assert span.name == "store put local"
        attributes = dict(span.attributes or {})
        assert attributes["imagegate.store.object"] == stored.key
        assert attributes["imagegate.store.bytes"] == 99
        assert attributes["imagegate.store.backend"] == "local"
        assert "error.type" not in attributes

        await time_out_a_write(ResultStore(local.store.backend, QUICK, tracer=tracing.store))
        failed = exporter.get_finished_spans()[-1]
        assert dict(failed.attributes or {})["error.type"] == "timeout"
        assert failed.status.status_code.name == "ERROR"
    finally:
        await tracing.aclose()


def test_a_failed_write_is_unavailable_with_reason_store_unavailable() -> None:
    answer = failure(StoreUnavailable("unreachable"))
    assert answer.code == grpc.StatusCode.UNAVAILABLE
    status = status_pb2.Status.FromString(dict(answer.trailing_metadata)[DETAILS_KEY])  # type: ignore[arg-type]
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert (info.reason, info.domain) == ("STORE_UNAVAILABLE", "imagegate")
    assert "unreachable" in answer.message


async def time_out_a_write(store: ResultStore) -> None:
    """A write whose source stalls past the store's write timeout."""

    async def stalls() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.Event().wait()

    with pytest.raises(StoreUnavailable):
        await store.put(stalls(), content_type="image/png", call=CALL, retention=DAY)
