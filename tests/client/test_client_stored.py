"""``result_images``: every image of an ImagesResult as bytes, inline or stored, from a
real gateway (storing to its local store) in this process."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from client_support import gateway_on_emulator
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, results_pb2

from imagegate_server.client.fetch import FetchError, result_images

STORED = params_pb2.DELIVERY_STORED


def request(**parameters: object) -> pb.CreateImageRequest:
    return pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(
            prompt="a fox", model="gpt-image-2", size="1024x1024", n=2, **parameters
        )
    )


async def test_inline_and_stored_results_give_the_same_kind_of_bytes() -> None:
    async with (
        gateway_on_emulator() as (target, _),
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        inline = (await stub.CreateImage(request())).result
        stored = (await stub.CreateImage(request(delivery=STORED))).result
        from_inline = await result_images(inline)
        from_store = await result_images(stored)
    assert from_inline == [image.data for image in inline.images]
    assert [len(data) for data in from_store] == [i.stored.size_bytes for i in stored.images]
    assert all(data.startswith(b"\x89PNG") for data in from_store)


async def test_bounded_in_size_and_refused_once_the_link_expired() -> None:
    async with (
        gateway_on_emulator(store_link_lifetime_s=1) as (target, _),
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        result = (await stub.CreateImage(request(delivery=STORED))).result
        with pytest.raises(FetchError, match="over 1000"):
            await result_images(result, max_bytes=1000)
        await asyncio.sleep(2.2)
        with pytest.raises(FetchError, match="HTTP 403") as caught:
            await result_images(result)
    assert "signature" not in str(caught.value)  # the link's credential stays out of errors


async def test_a_stream_result_has_no_bytes_of_its_own() -> None:
    result = results_pb2.ImagesResult(images=[results_pb2.GeneratedImage()])
    with pytest.raises(ValueError, match="ImageChunk"):
        await result_images(result)
