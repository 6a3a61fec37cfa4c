"""5. observability: what metrics and traces cost, as ratios against a plain gateway.

The overhead scenario's call (unary CreateImage, 256x256 dall-e-2, the emulator
answering at once) at concurrency 1, through three gateway processes in front of
one emulator:

    plain            no metrics port, no traces (the edge still records its metrics
                     in memory: recording is part of every call and cannot be off)
    metrics          IMAGEGATE_METRICS_PORT set and /metrics scraped every second
                     (Prometheus' default is a minute; this is the costly end)
    metrics+traces   as metrics, plus OTEL_EXPORTER_OTLP_ENDPOINT: every call
                     sampled, its SERVER span and CLIENT attempt span batched and
                     exported over OTLP/HTTP to a receiver in this process on
                     loopback (it decodes every span, as a collector would)

The three take turns in rounds, so that the machine's load (two shared cores)
falls on all of them alike. Reported per case: the gateway's CPU time per call
(user + system, all its threads, from /proc) and p50 latency, each as a ratio to
plain; plus what recording one call's metrics and making its spans cost in
process, measured directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from imagegate_server.bench.clients import GrpcPool, decode_images, direct_client
from imagegate_server.bench.loadgen import PYTHON_GRPC, PYTHON_HTTP
from imagegate_server.bench.measure import LoadResult, closed_loop
from imagegate_server.bench.model import Context, Row, ScenarioResult
from imagegate_server.bench.otlp import OtlpReceiver
from imagegate_server.bench.procs import StackConfig, running_emulator, running_gateway
from imagegate_server.bench.scenarios.overhead import BODY, gateway_call
from imagegate_server.bench.usage import cpu_seconds, rss_bytes

NAME = "observability"
CASES = ("plain", "metrics", "metrics+traces")
SCRAPE_INTERVAL_S = 1.0


@dataclass
class _Case:
    name: str
    target: str
    pid: int
    metrics_port: int | None
    pool: GrpcPool | None = None
    load: LoadResult = field(default_factory=LoadResult)
    cpu_s: float = 0.0
    peak_rss: int = 0

    @property
    def cpu_ms_per_call(self) -> float:
        return self.cpu_s * 1000 / max(self.load.ok, 1)


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    rounds, per_round = (1, 10) if ctx.tiny else (5, 400)
    time_limit = 10.0 if ctx.tiny else 120.0
    workdir = ctx.workdir / NAME
    receiver = OtlpReceiver()
    endpoint = await receiver.start()
    try:
        async with _stack(workdir, endpoint) as (emulator_url, cases):
            for case in cases:
                case.pool = GrpcPool(case.target)
                await case.pool.ready()
                await closed_loop(gateway_call(case.pool), 1, 5 if ctx.tiny else 50, time_limit)
            for _ in range(rounds):
                for case in cases:
                    await _measure(case, per_round, time_limit)
            direct = await direct_phase(emulator_url, rounds * per_round, time_limit)
            for case in cases:
                assert case.pool is not None
                await case.pool.close()
        await receiver.wait_for(1, 10.0)  # the traced gateway flushed on its stop
    finally:
        await receiver.stop()
    plain = cases[0]
    for case in cases:
        row = Row.of(NAME, case.name, "gateway", 1, case.load, case.peak_rss)
        row.gateway_cpu_ms_per_call = case.cpu_ms_per_call
        row.generator = PYTHON_GRPC
        if case is not plain:
            row.extra["cpu_ratio"] = case.cpu_ms_per_call / max(plain.cpu_ms_per_call, 1e-9)
            p50 = case.load.percentile_s(50) / max(plain.load.percentile_s(50), 1e-9)
            row.extra["p50_ratio"] = p50
        result.rows.append(row)
    reference = Row.of(NAME, "emulator direct (reference)", "direct", 1, direct)
    reference.generator = PYTHON_HTTP
    result.rows.append(reference)
    recording_us, spans_us = _in_process_costs(2_000 if ctx.tiny else 50_000)
    result.notes.append(_summary(cases, recording_us, spans_us, len(receiver.spans)))
    return result


@contextlib.asynccontextmanager
async def _stack(workdir: Path, otlp_endpoint: str) -> AsyncIterator[tuple[str, list[_Case]]]:
    async with contextlib.AsyncExitStack() as stack:
        url, _pid = await stack.enter_async_context(running_emulator(StackConfig(), workdir))
        cases = []
        for name in CASES:
            env: dict[str, str] = {}
            if name != "plain":
                env["IMAGEGATE_METRICS_PORT"] = "0"
            if name == "metrics+traces":
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
            slug = name.replace("+", "-")
            target, pid = await stack.enter_async_context(
                running_gateway(url, env, workdir, f"gateway-{slug}")
            )
            port = _metrics_port(workdir / f"gateway-{slug}.log")
            cases.append(_Case(name, target, pid, port))
        # Stopped in reverse: the gateways (the traced one flushes its spans), then
        # the emulator.
        yield url, cases


def _metrics_port(log: Path) -> int | None:
    """The port the gateway's log says its metrics endpoint took (None if it has none)."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "metrics endpoint":
            return int(str(record["address"]).rsplit(":", 1)[1])
    return None


async def _measure(case: _Case, calls: int, time_limit: float) -> None:
    assert case.pool is not None
    scraper = None
    if case.metrics_port is not None:
        scraper = asyncio.create_task(_scrape_every(case.metrics_port, SCRAPE_INTERVAL_S))
    before = cpu_seconds(case.pid)
    try:
        load = await closed_loop(gateway_call(case.pool), 1, calls, time_limit)
    finally:
        if scraper is not None:
            scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scraper
    case.cpu_s += cpu_seconds(case.pid) - before
    case.peak_rss = max(case.peak_rss, rss_bytes(case.pid))
    case.load.latencies_s += load.latencies_s
    case.load.errors.update(load.errors)
    case.load.elapsed_s += load.elapsed_s


async def _scrape_every(port: int, interval_s: float) -> None:
    url = f"http://127.0.0.1:{port}/metrics"
    # Bounded like every loop here: an hour of scrapes outlasts any phase.
    for _ in range(int(3600 / interval_s)):
        await asyncio.to_thread(_get, url)
        await asyncio.sleep(interval_s)


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        response.read()


async def direct_phase(emulator_url: str, calls: int, time_limit: float) -> LoadResult:
    """The same call straight to the emulator, at concurrency 1: the floor under every
    case of a scenario that compares gateways (this one's, routing's)."""
    http = direct_client(emulator_url, 4, 30)

    async def call() -> None:
        response = await http.post("images/generations", json=BODY)
        response.raise_for_status()
        decode_images(response.json())

    try:
        return await closed_loop(call, 1, calls, time_limit)
    finally:
        await http.aclose()


def _in_process_costs(iterations: int) -> tuple[float, float]:
    """CPU microseconds per call of recording its metrics, and of making its spans
    (a server span and one attempt span, with every attribute; export not included)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from imagegate_server.gateway.edge.rpc import RpcCall
    from imagegate_server.metrics import Metrics
    from imagegate_server.tracing.provider import Tracing

    metrics = Metrics()
    rpc = metrics.rpc("CreateImage")
    model = "gpt-image-2"
    began = time.process_time()
    for _ in range(iterations):
        rpc.started()
        rpc.received()
        with metrics.in_flight(None):
            metrics.upstream_request("default", model, 200, 0.01)
            metrics.images(model, "generation", 1)
            metrics.result_bytes("generation", 6_000)
            metrics.spend(None, model, 42_000, "default")
            metrics.set_limiter_state("up")
        rpc.sent()
        rpc.handled("OK", 0.01)
    recording_us = (time.process_time() - began) * 1e6 / iterations

    class _Dropped(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracing = Tracing.with_exporter(_Dropped())
    server_spans = tracing.rpc_tracer("imagegate.v1.ImagesService")
    url = "http://127.0.0.1:1/v1/images/generations"
    metadata = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    began = time.process_time()
    for _ in range(iterations):
        call = RpcCall("CreateImage", 0.0, "0123456789abcdef", model=model, requested_images=1)
        call.span = server_spans.begin("CreateImage", metadata)
        attempt = tracing.upstream.attempt("generation", model, url, 0, "default", "openai")
        attempt.headers()
        attempt.answered(200, "req_0123456789")
        attempt.end()
        call.images, call.cost_micros, call.input_tokens, call.output_tokens = 1, 42_000, 20, 272
        call.span.end("OK", call)
    spans_us = (time.process_time() - began) * 1e6 / iterations
    return recording_us, spans_us


def _summary(cases: list[_Case], recording_us: float, spans_us: float, exported: int) -> str:
    plain = cases[0]
    parts = [
        f"{c.name}: CPU {c.cpu_ms_per_call:.3f} ms/call "
        f"({c.cpu_ms_per_call / max(plain.cpu_ms_per_call, 1e-9):.2f}x plain), "
        f"p50 {c.load.percentile_s(50) * 1000:.2f} ms "
        f"({c.load.percentile_s(50) / max(plain.load.percentile_s(50), 1e-9):.2f}x plain)"
        for c in cases
    ]
    return (
        "; ".join(parts)
        + f". In process: recording one call's metrics {recording_us:.1f} us of CPU, making"
        f" its two spans {spans_us:.1f} us (export excluded). {exported} spans reached the"
        " OTLP receiver. CPU is read from /proc in 10 ms ticks: --tiny measures nothing."
        " Driven by the Python gRPC client whatever is installed: every case pays it alike,"
        " and the figures are ratios between cases."
    )
