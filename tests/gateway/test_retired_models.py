"""Models past their OpenAI shutdown date: refused locally against OpenAI, served elsewhere."""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory, chunks_of, detail, edit_requests, rejected_upload
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.images import png

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway
from imagegate_server.models import (
    LIFECYCLE_TABLE_DATE,
    MODEL_RULES,
    replacement_for,
    retired,
)
from imagegate_server.settings import Settings

# An address nothing listens on: a request that went "upstream" would fail UNAVAILABLE,
# so NOT_FOUND proves the gateway answered by itself.
OPENAI = "https://api.openai.com/v1"
TODAY = datetime.datetime.now(datetime.UTC).date()


def generation(model: str) -> pb.CreateImageRequest:
    return pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(prompt="a cat", model=model)
    )


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    info = detail(error, error_details_pb2.ErrorInfo)  # type: ignore[arg-type]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    return info


def test_the_default_model_is_one_openai_serves() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.default_model == "gpt-image-2"
    assert retired(settings.default_model, TODAY) is None


def test_every_retired_model_leads_to_one_openai_serves() -> None:
    for model, rules in MODEL_RULES.items():
        if rules.lifecycle is None:
            continue
        replacement = replacement_for(model, rules.lifecycle.shutdown)
        assert replacement in MODEL_RULES, model
        assert retired(replacement, rules.lifecycle.shutdown) is None, model


def test_a_model_is_retired_from_its_shutdown_day_on() -> None:
    lifecycle = MODEL_RULES["gpt-image-1.5"].lifecycle
    assert lifecycle is not None
    assert retired("gpt-image-1.5", lifecycle.shutdown - datetime.timedelta(days=1)) is None
    assert retired("gpt-image-1.5", lifecycle.shutdown) == lifecycle


def test_auto_refuses_only_against_openai_itself() -> None:
    def refuses(base_url: str, setting: str = "auto", *, emulator: bool = False) -> bool:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, openai_base_url=base_url, refuse_retired_models=setting
        )
        return settings.refuses_retired_models(emulator=emulator)

    assert refuses(OPENAI)
    assert not refuses(OPENAI, emulator=True)
    assert not refuses("http://127.0.0.1:8089/v1")
    assert not refuses("https://api.openai.com.example.net/v1")
    assert refuses("http://127.0.0.1:8089/v1", "on")
    assert not refuses(OPENAI, "off")


async def test_the_default_model_reaches_the_upstream(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        await stub.CreateImage(
            pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt="a cat"))
        )
    (entry,) = emulator.journal.entries
    assert entry.json["model"] == "gpt-image-2"


@pytest.mark.parametrize("model", ["dall-e-3", "gpt-image-1", "gpt-image-1.5"])
async def test_a_retired_model_against_openai_is_refused_locally(
    start_gateway: GatewayFactory, model: str
) -> None:
    gateway = await start_gateway(openai_base_url=OPENAI, connect_timeout_s=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateImage(generation(model), timeout=10)
    error = caught.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    lifecycle = MODEL_RULES[model].lifecycle
    assert lifecycle is not None
    info = error_info(error)
    assert info.reason == "MODEL_RETIRED"
    assert dict(info.metadata) == {
        "model": model,
        "shutdown_date": lifecycle.shutdown.isoformat(),
        "replacement": "gpt-image-2",
    }
    assert "gpt-image-2" in (error.details() or "")


async def test_the_refusal_comes_before_any_upload_is_read(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway: Gateway = await start_gateway(refuse_retired_models="on")
    # 3 MiB: 48 chunks, far more than flow control lets ahead.
    image = png(1024, 1024, mode="RGB", noise=True)
    stream = edit_requests(
        params_pb2.EditParameters(
            prompt="a hat", model="gpt-image-1.5", images=[params_pb2.FileInfo()]
        ),
        chunks_of(params_pb2.FILE_ROLE_IMAGE, image),
    )
    error = await rejected_upload(gateway, "CreateImageEdit", stream)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).metadata["model"] == "gpt-image-1.5"
    assert stream.pulled < len(stream.messages) // 2, "the gateway read the upload first"
    assert emulator.journal.entries == []


async def test_variations_say_no_openai_model_serves_them(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(refuse_retired_models="on")
    stream = edit_requests(
        params_pb2.VariationParameters(image=params_pb2.FileInfo()),
        chunks_of(params_pb2.FILE_ROLE_IMAGE, png(64, 64, mode="RGB")),
        pb.CreateImageVariationRequest,
    )
    error = await rejected_upload(gateway, "CreateImageVariation", stream)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).metadata["model"] == "dall-e-2"
    assert "compatible server" in (error.details() or "")


async def test_retired_models_keep_working_against_the_emulator(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()  # auto: the base URL is the emulator's, not OpenAI's
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        reply = await stub.CreateImage(generation("gpt-image-1.5"))
    assert len(reply.result.images) == 1
    (entry,) = emulator.journal.entries
    assert entry.json["model"] == "gpt-image-1.5"


def test_the_contract_page_lists_every_shutdown_of_the_table() -> None:
    page = (Path(__file__).parents[2] / "docs" / "contract.md").read_text()
    section = page.split("## Models", 1)[1].split("\n## ", 1)[0]
    assert LIFECYCLE_TABLE_DATE.isoformat() in section
    for model, rules in MODEL_RULES.items():
        if rules.lifecycle is not None:
            assert f"`{model}`" in section, model
            assert rules.lifecycle.shutdown.isoformat() in section, model
