"""A minimal OTLP/HTTP trace receiver on loopback: what a collector does for the
gateway's exporter (``POST /v1/traces``, protobuf in, an empty success out).

The benchmark points the gateway at it to measure what exporting spans really
costs (encoding, batching, the HTTP request), and the tests use it to see which
spans a real ``imagegate serve`` exported. It keeps the decoded spans (name, kind,
attributes, resource attributes), nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PATH = "/v1/traces"
_PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: int
    """OTLP's SpanKind: 2 SERVER, 3 CLIENT."""
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    """``url = await receiver.start()``; ``receiver.spans``; ``await receiver.stop()``."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, host: str = "127.0.0.1") -> str:
        """Serve on a free port; returns the base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(PATH, self._export)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        self._runner = runner
        port = runner.addresses[0][1]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout_s: float) -> None:
        """Until at least ``count`` spans arrived; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while len(self.spans) < count:
                self._changed.clear()
                await self._changed.wait()

    async def _export(self, request: web.Request) -> web.Response:
        if request.content_type != _PROTOBUF:
            return web.Response(status=415)
        export = ExportTraceServiceRequest.FromString(await request.read())
        self.requests += 1
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                            resource=resource,
                        )
                    )
        self._changed.set()
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type=_PROTOBUF)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)
