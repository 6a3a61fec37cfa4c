"""DELIVERY_STORED end to end, on both backends: a real gateway stores each final image
and answers with links that a plain HTTP client fetches; partial images stay inline;
objects carry their call's metadata; the default stays inline bytes."""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import pytest
from delivery_support import (
    NEWER_MODEL,
    PNG_SIGNATURE,
    STORED,
    Caller,
    clients_file,
    detail,
    fetch,
    target,
)
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2, results_pb2
from support.gateways import GatewayFactory
from support.images import png

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway
from imagegate_server.store.objects import owner

TEAM = {"team": {}}


async def caller_of(gateway: Gateway, token: str | None) -> Caller:
    channel = grpc.aio.insecure_channel(target(gateway))
    return Caller(channel, token)


async def team_caller(start: GatewayFactory, tmp_path: Path) -> tuple[Gateway, Caller]:
    """A gateway with one client, ``team``, and that client's caller."""
    path, tokens = clients_file(tmp_path, **TEAM)
    gateway = await start(clients_file=path)
    return gateway, await caller_of(gateway, tokens["team"])


async def check_stored(
    gateway: Gateway, image: results_pb2.GeneratedImage, client: str | None
) -> bytes:
    """The image's link works with a plain GET, and the result describes the object."""
    assert image.WhichOneof("content") == "stored"
    stored = image.stored
    assert owner(stored.object) == client
    answer = await fetch(stored.url)
    assert answer.status_code == 200
    assert answer.content.startswith(PNG_SIGNATURE)
    assert len(answer.content) == stored.size_bytes
    assert answer.headers["content-type"] == stored.content_type == "image/png"
    now = datetime.datetime.now(datetime.UTC)
    link_expires = stored.expires_at.ToDatetime(datetime.UTC)
    retained = stored.retained_until.ToDatetime(datetime.UTC)
    assert now < link_expires <= retained
    # On the store, the object is what the link served.
    running = gateway.store
    assert running is not None
    found = await running.store.stat(stored.object)
    assert found is not None and found.size == stored.size_bytes
    return answer.content


async def test_unary_results_are_links_that_a_plain_get_fetches(
    start: GatewayFactory, tmp_path: Path
) -> None:
    gateway, caller = await team_caller(start, tmp_path)
    async with caller.channel:
        result = await caller.generate(n=2, delivery=STORED)
        assert len(result.images) == 2
        contents = [await check_stored(gateway, image, "team") for image in result.images]
        assert contents[0] != contents[1]
        assert result.cost.usd_micros > 0  # priced like any call
        # The same call inline, as before: the default.
        inline = await caller.generate(n=1)
        assert inline.images[0].WhichOneof("content") == "data"
        assert inline.images[0].data.startswith(PNG_SIGNATURE)
        explicit = await caller.generate(n=1, delivery=params_pb2.DELIVERY_INLINE)
        assert explicit.images[0].WhichOneof("content") == "data"


async def test_each_object_carries_its_call(start: GatewayFactory, tmp_path: Path) -> None:
    gateway, caller = await team_caller(start, tmp_path)
    async with caller.channel:
        request = caller.images.CreateImage(
            pb.CreateImageRequest(
                parameters=params_pb2.GenerationParameters(
                    prompt="a fox", model="gpt-image-2", delivery=STORED
                )
            ),
            metadata=(*caller.metadata, ("x-request-id", "req-delivery-1")),
            timeout=60,
        )
        reply = await request
    running = gateway.store
    assert running is not None
    found = await running.store.stat(reply.result.images[0].stored.object)
    assert found is not None
    assert dict(found.metadata) == {
        "client": "team",
        "model": "gpt-image-2",
        "request-id": "req-delivery-1",
    }


async def test_a_stream_relays_partials_inline_and_final_images_as_links(
    start: GatewayFactory, tmp_path: Path
) -> None:
    gateway, caller = await team_caller(start, tmp_path)
    async with caller.channel:
        messages = await caller.stream(n=2, partial_images=2, delivery=STORED)
    chunks = [m.image_chunk for m in messages if m.HasField("image_chunk")]
    assert chunks, "partial images arrive as slices"
    assert all(chunk.HasField("partial_image_index") for chunk in chunks)  # no final slices
    result = messages[-1].result
    assert len(result.images) == 2
    for image in result.images:
        await check_stored(gateway, image, "team")


async def test_a_stream_openai_cannot_stream_is_stored_too(
    start: GatewayFactory, tmp_path: Path
) -> None:
    # dall-e-2 answers whole: the stream RPC stores the answer's images as they decode.
    gateway, caller = await team_caller(start, tmp_path)
    async with caller.channel:
        messages = await caller.stream(
            model="dall-e-2",
            n=2,
            size="256x256",
            response_format=params_pb2.RESPONSE_FORMAT_B64_JSON,
            delivery=STORED,
        )
    assert [m.WhichOneof("event") for m in messages] == ["result"]
    for image in messages[0].result.images:
        await check_stored(gateway, image, "team")


@pytest.mark.parametrize("streamed", [False, True], ids=["unary", "stream"])
async def test_edits_store_their_results(
    start: GatewayFactory, tmp_path: Path, streamed: bool
) -> None:
    gateway, caller = await team_caller(start, tmp_path)
    async with caller.channel:
        answer = await caller.edit(
            png(256, 256), stream=streamed, model="gpt-image-2", delivery=STORED
        )
    result = answer[-1].result if streamed else answer
    assert len(result.images) == 1
    await check_stored(gateway, result.images[0], "team")


async def test_anonymous_callers_store_as_no_client(start: GatewayFactory) -> None:
    gateway = await start()
    caller = await caller_of(gateway, None)
    async with caller.channel:
        result = await caller.generate(delivery=STORED)
    assert "/_anonymous/" in result.images[0].stored.object
    assert (await fetch(result.images[0].stored.url)).status_code == 200


async def test_an_unknown_delivery_is_invalid_argument(start: GatewayFactory) -> None:
    gateway = await start()
    caller = await caller_of(gateway, None)
    async with caller.channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.generate(delivery=7)  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = detail(caught.value, error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["parameters.delivery"]


@pytest.mark.slow
async def test_four_real_sized_images_fit_the_default_receive_limit_as_links(
    gateway_store: dict[str, object],
) -> None:
    # n=4 at 1536x1024: about 10 MB of PNG, 13 MB of base64, over gRPC's 4 MiB
    # default receive limit inline; stored, the answer is a few hundred bytes.
    from delivery_support import KEY
    from support.gateways import started_gateways

    config = EmulatorConfig(api_key=KEY, cached_renders=True, real_sizes=True)
    async with (
        Emulator(config) as emulator,
        started_gateways(KEY, emulator.base_url, **gateway_store) as start,
    ):
        gateway = await start()
        caller = await caller_of(gateway, None)
        async with caller.channel:
            result = await caller.generate(n=4, size="1536x1024", delivery=STORED)
            assert result.ByteSize() < 4096
            sizes = []
            for image in result.images:
                content = await check_stored(gateway, image, None)
                sizes.append(len(content))
            assert min(sizes) > 1_000_000  # as large as OpenAI's
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await caller.generate(n=4, size="1536x1024")
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_newer_model_stores_its_images_whatever_their_size(start: GatewayFactory) -> None:
    gateway = await start()
    caller = await caller_of(gateway, None)
    async with caller.channel:
        result = await caller.generate(model=NEWER_MODEL, delivery=STORED)
    assert (await fetch(result.images[0].stored.url)).status_code == 200


async def test_the_wiring_records_store_metrics_and_a_span_per_write(
    emulator: Emulator, gateway_store: dict[str, object]
) -> None:
    from delivery_support import KEY
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from support.gateways import gateway_settings

    from imagegate_server.tracing.provider import Tracing

    exporter = InMemorySpanExporter()
    settings = gateway_settings(KEY, emulator.base_url, **gateway_store)
    gateway = Gateway(settings, tracing=Tracing.with_exporter(exporter))
    await gateway.start()
    try:
        caller = await caller_of(gateway, None)
        async with caller.channel:
            result = await caller.generate(n=2, delivery=STORED)
        backend = settings.store_backend
        registry = gateway.metrics.registry
        labels = {"backend": backend}
        assert registry.get_sample_value("imagegate_store_written_objects_total", labels) == 2
        written = sum(image.stored.size_bytes for image in result.images)
        assert registry.get_sample_value("imagegate_store_written_bytes_total", labels) == written
        spans = exporter.get_finished_spans()
        writes = [span for span in spans if span.name == f"store put {backend}"]
        (call,) = [span for span in spans if span.name.endswith("/CreateImage")]
        assert len(writes) == 2
        assert all(span.parent is not None for span in writes)
        assert {span.parent.span_id for span in writes if span.parent} == {call.context.span_id}
        objects = {span.attributes["imagegate.store.object"] for span in writes if span.attributes}
        assert objects == {image.stored.object for image in result.images}
    finally:
        await gateway.stop(0)
        exporter.shutdown()
