"""How a job's and a kept call's images are delivered: stored by default for a job (a
reference its client can relink, a link that fetches the image), inline on request,
with the client's storage policy judged at submit; a kept stored call's retry gets
the first call's stored images, not a second generation."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
import tomli_w
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import (
    images_service_pb2_grpc,
    params_pb2,
    stored_pb2,
    stored_pb2_grpc,
)
from jobs_support import OPENAI_KEY, generation_job, result_of, stubs
from support.gateways import started_gateways

from imagegate_server.clients.tokens import generate
from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.gateway.server import Gateway

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=OPENAI_KEY, cached_renders=True)) as running:
        yield running


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    """A clients file with a client that may store results and one that may not."""
    document: dict[str, object] = {"clients": {}}
    found: dict[str, str] = {}
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    for name, policy in {"keeper": {}, "inline-only": {"store_results": False}}.items():
        token = generate()
        found[name] = token.token
        entry = {"id": token.token_id, "sha256": token.sha256, "created": created}
        document["clients"][name] = {**policy, "tokens": [entry]}  # type: ignore[index]
    (tmp_path / "clients.toml").write_bytes(tomli_w.dumps(document).encode())
    return found


@pytest.fixture
async def gateway(
    emulator: Emulator, tmp_path: Path, tokens: dict[str, str]
) -> AsyncIterator[Gateway]:
    async with started_gateways(OPENAI_KEY, emulator.base_url) as start:
        yield await start(clients_file=tmp_path / "clients.toml")


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield channel


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _wait(name: str) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=30))


async def test_a_jobs_images_are_stored_by_default_and_its_client_can_relink_them(
    channel: grpc.aio.Channel, tokens: dict[str, str]
) -> None:
    jobs, operations = stubs(channel)
    metadata = _auth(tokens["keeper"])
    submitted = await jobs.SubmitImageJob(generation_job(), metadata=metadata, timeout=30)
    done = await operations.WaitOperation(_wait(submitted.name), metadata=metadata, timeout=40)
    image = result_of(done).images[0]
    assert image.WhichOneof("content") == "stored"
    stored = image.stored
    assert stored.object.split("/")[2] == "keeper"  # the client's own key segment
    async with httpx.AsyncClient() as http:
        fetched = await http.get(stored.url, timeout=30)
    assert fetched.status_code == 200 and fetched.content.startswith(PNG_SIGNATURE)
    assert len(fetched.content) == stored.size_bytes
    relinked = await stored_pb2_grpc.StoredImagesServiceStub(channel).GetStoredImage(
        stored_pb2.GetStoredImageRequest(object=stored.object), metadata=metadata, timeout=30
    )
    assert relinked.image.object == stored.object


async def test_a_client_that_may_not_store_is_refused_at_submit_unless_it_asks_inline(
    channel: grpc.aio.Channel, tokens: dict[str, str], emulator: Emulator
) -> None:
    jobs, operations = stubs(channel)
    metadata = _auth(tokens["inline-only"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await jobs.SubmitImageJob(generation_job(), metadata=metadata, timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "DELIVERY_INLINE" in (refused.value.details() or "")
    assert not emulator.journal.entries  # refused before anything was queued or sent
    submitted = await jobs.SubmitImageJob(
        generation_job(inline=True), metadata=metadata, timeout=30
    )
    done = await operations.WaitOperation(_wait(submitted.name), metadata=metadata, timeout=40)
    assert result_of(done).images[0].data.startswith(PNG_SIGNATURE)


async def test_a_kept_stored_calls_retry_gets_the_first_calls_stored_image(
    channel: grpc.aio.Channel, tokens: dict[str, str], emulator: Emulator
) -> None:
    images = images_service_pb2_grpc.ImagesServiceStub(channel)
    request = pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(
            prompt="a kept lighthouse", model="gpt-image-2", delivery=params_pb2.DELIVERY_STORED
        ),
        request_id=str(uuid.uuid4()),
    )
    metadata = _auth(tokens["keeper"])
    first = await images.CreateImage(request, metadata=metadata, timeout=60)
    again = await images.CreateImage(request, metadata=metadata, timeout=60)
    assert first.result.images[0].stored.object
    assert again.result.images[0].stored.object == first.result.images[0].stored.object
    assert sum(e.path.endswith("/generations") for e in emulator.journal.entries) == 1
