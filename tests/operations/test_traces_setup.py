"""Turning traces on and off with the standard ``OTEL_*`` variables, what a gateway
without traces imports, and a real ``imagegate serve`` exporting over OTLP/HTTP to a
receiver on loopback (flushed when SIGTERM stops it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.serve import clean_env, serve

from imagegate_server.bench.otlp import OtlpReceiver
from imagegate_server.errors import StartupError
from imagegate_server.tracing import TraceSettings, tracing_from_environment

ENDPOINT = "http://127.0.0.1:4318"
HTTP = "http/protobuf"


@pytest.mark.parametrize(
    ("variables", "exporters"),
    [
        ({}, ()),
        ({"otel_exporter_otlp_endpoint": ENDPOINT}, ("otlp",)),
        ({"otel_exporter_otlp_traces_endpoint": ENDPOINT + "/v1/traces"}, ("otlp",)),
        ({"otel_traces_exporter": "otlp"}, ("otlp",)),
        ({"otel_traces_exporter": "console"}, ("console",)),
        ({"otel_traces_exporter": "console, OTLP"}, ("otlp", "console")),
        ({"otel_traces_exporter": "none", "otel_exporter_otlp_endpoint": ENDPOINT}, ()),
        ({"otel_sdk_disabled": True, "otel_exporter_otlp_endpoint": ENDPOINT}, ()),
        (
            {"otel_exporter_otlp_endpoint": ENDPOINT, "otel_exporter_otlp_protocol": HTTP},
            ("otlp",),
        ),
    ],
)  # fmt: skip
def test_the_standard_variables_turn_traces_on(
    variables: dict[str, object], exporters: tuple[str, ...]
) -> None:
    assert TraceSettings(**variables).exporters() == exporters  # type: ignore[arg-type]


def test_no_variables_no_tracing() -> None:
    assert tracing_from_environment(TraceSettings()) is None


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"otel_traces_exporter": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"otel_exporter_otlp_endpoint": ENDPOINT, "otel_exporter_otlp_protocol": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            {"otel_traces_exporter": "otlp", "otel_exporter_otlp_traces_protocol": "http/json"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
        ({"otel_exporter_otlp_endpoint": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"otel_exporter_otlp_traces_endpoint": "ftp://x/"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ],
)
def test_what_cannot_be_honoured_stops_the_start_up_in_one_line(
    variables: dict[str, object], named: str
) -> None:
    with pytest.raises(StartupError) as caught:
        TraceSettings(**variables).exporters()  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(named) and "\n" not in message


def test_the_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:pw@collector:4318/?k=v")
    settings = TraceSettings.from_environment()
    assert settings.exporters() == ("otlp",)
    # What the log says: no credentials, no query.
    assert settings.describe() == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "perhaps")
    with pytest.raises(StartupError, match="OTEL_SDK_DISABLED"):
        TraceSettings.from_environment()


_GATEWAY_WITHOUT_TRACES = """
import asyncio, sys
from imagegate_server.gateway.server import Gateway
from imagegate_server.settings import Settings

async def main():
    gateway = Gateway(Settings(_env_file=None, host="127.0.0.1", port=0))
    await gateway.start()
    await gateway.stop(0)

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith(TRACING)))
"""
# What traces need and nothing else does. (redis-py imports the SDK's *metrics*
# whenever the SDK is installed: redis/observability/providers.py.)
TRACING = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "imagegate_server.tracing.provider",
    "imagegate_server.tracing.server_spans",
    "imagegate_server.tracing.attempt_spans",
    "imagegate_server.tracing.conventions",
)


def test_a_gateway_without_traces_and_the_help_import_no_opentelemetry(tmp_path: Path) -> None:
    env = {k: v for k, v in clean_env().items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _GATEWAY_WITHOUT_TRACES.replace("TRACING", repr(TRACING))],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]"
    probe = "import sys; from imagegate_server.cli import main\ntry:\n main(['serve', '--help'])\n"
    probe += "except SystemExit: pass\nprint([m for m in sys.modules if 'opentelemetry' in m])"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
async def test_serve_exports_its_spans_over_otlp_and_flushes_them_on_sigterm(
    tmp_path: Path,
) -> None:
    receiver = OtlpReceiver()
    endpoint = await receiver.start()
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        # Longer than the test: only the flush at shutdown can deliver the spans.
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test",
    )
    try:
        with serve(["--port", "0"], env, tmp_path) as server:
            port = await asyncio.to_thread(server.wait_serving)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = images_service_pb2_grpc.ImagesServiceStub(channel)
                request = pb.CreateImageRequest(
                    parameters=params_pb2.GenerationParameters(prompt="a kite", model="gpt-image-2")
                )
                await stub.CreateImage(request, timeout=60)
            assert receiver.spans == []
            server.terminate()
            assert await asyncio.to_thread(server.wait, 60) == 0
            assert any(r.get("msg") == "traces on" for r in server.records())
        await receiver.wait_for(2, timeout_s=10)
    finally:
        await receiver.stop()
    by_kind = {span.kind: span for span in receiver.spans}
    server_span, attempt = by_kind[2], by_kind[3]  # OTLP SpanKind SERVER, CLIENT
    assert server_span.name == "imagegate.v1.ImagesService/CreateImage"
    assert server_span.attributes["rpc.status_code"] == "OK"
    assert server_span.attributes["gen_ai.request.model"] == "gpt-image-2"
    assert server_span.resource["service.name"] == "imagegate"
    assert server_span.resource["deployment.environment.name"] == "test"
    assert attempt.parent_span_id == server_span.span_id
    assert attempt.trace_id == server_span.trace_id


def test_serve_refuses_an_exporter_it_lacks_in_one_line(tmp_path: Path) -> None:
    env = clean_env(OTEL_TRACES_EXPORTER="zipkin")
    with serve(["--port", "0"], env, tmp_path) as server:
        assert server.wait() == 1
    problems = [line for line in server.lines if line.startswith("imagegate serve:")]
    assert len(problems) == 1 and "OTEL_TRACES_EXPORTER" in problems[0], server.lines
    assert not any("Traceback" in line for line in server.lines)
