"""The floor of the gateway's stack: ``python -m imagegate_server.bench.stack_floor``.

A grpc.aio server whose CreateImage does the least any gateway built on the
product's fixed stack must do: one JSON POST through the gateway's own httpx
transport (:class:`AiohttpTransport`), the body parsed (orjson) and the image decoded
(pybase64) into the reply. No validation, callers, limits, retries, metrics, logs
or traces. The overhead scenario runs it beside the gateway in the same run, so the
gateway's CPU per call splits into what the stack costs and what the gateway adds.

    python -m imagegate_server.bench.stack_floor UPSTREAM_URL API_KEY PORT_FILE

Serves on 127.0.0.1 (an ephemeral port, written to PORT_FILE) on the gateway's
event loop (:mod:`imagegate_server.eventloop`, ``auto``), until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pybase64
from imagegate.v1 import images_service_pb2 as pb

from imagegate_server import eventloop
from imagegate_server.upstream.transport import AiohttpTransport

_FORMATS = {1: "url", 2: "b64_json"}  # RESPONSE_FORMAT_URL, RESPONSE_FORMAT_B64_JSON


async def serve(upstream_url: str, api_key: str, port_file: Path) -> None:
    url = httpx.URL(upstream_url.rstrip("/") + "/images/generations")
    transport = AiohttpTransport(max_connections=256, keepalive_expiry_s=30.0)
    headers = [
        (b"host", url.netloc),
        (b"authorization", f"Bearer {api_key}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def create_image(request: pb.CreateImageRequest, context: Any) -> pb.CreateImageResponse:
        p = request.parameters
        body: dict[str, Any] = {"prompt": p.prompt, "model": p.model, "size": p.size}
        if p.response_format in _FORMATS:
            body["response_format"] = _FORMATS[p.response_format]
        answer = await transport.handle_async_request(
            httpx.Request("POST", url, headers=headers, content=orjson.dumps(body))
        )
        try:
            data = await answer.aread()
        finally:
            await answer.aclose()
        response = pb.CreateImageResponse()
        for item in orjson.loads(data)["data"]:
            response.result.images.add().data = pybase64.b64decode(item["b64_json"])
        return response

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        create_image,
        request_deserializer=pb.CreateImageRequest.FromString,
        response_serializer=pb.CreateImageResponse.SerializeToString,
    )
    service = pb.DESCRIPTOR.services_by_name["ImagesService"].full_name
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {"CreateImage": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await asyncio.to_thread(port_file.write_text, f"{port}\n")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)
    await transport.aclose()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    upstream_url, api_key, port_file = argv
    eventloop.run(serve(upstream_url, api_key, Path(port_file)), "auto")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
