"""Caller authentication: tokens from the clients file, reload and rotation, and the
secure-by-default start-up."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from gateway_support import OPENAI_KEY, GatewayFactory, detail
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from tenancy_support import ClientsFile, bearer

from imagegate_server.emulator import Emulator
from imagegate_server.errors import StartupError
from imagegate_server.gateway.server import Gateway
from imagegate_server.settings import Settings

GENERATIONS = "/v1/images/generations"
REQUEST = pb.CreateImageRequest(
    parameters=params_pb2.GenerationParameters(prompt="a cat", model="gpt-image-2")
)


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")


async def _call(
    gateway: Gateway, metadata: tuple[tuple[str, str], ...] = ()
) -> pb.CreateImageResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = images_service_pb2_grpc.ImagesServiceStub(channel)
        return await stub.CreateImage(REQUEST, metadata=metadata, timeout=30)


async def _refusal(
    gateway: Gateway, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(gateway, metadata)
    return caught.value


async def test_a_gateway_with_a_clients_file_refuses_calls_without_credentials(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path)
    error = await _refusal(gateway)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in (error.details() or "")
    assert emulator.journal.entries == []


async def test_every_wrong_token_gets_the_same_answer_and_is_never_echoed(
    start_gateway: GatewayFactory,
    emulator: Emulator,
    clients: ClientsFile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good = clients.add("team-a")
    token_id, secret = good.removeprefix("igk_").split("_", 1)
    wrong = {
        "wrong secret": f"igk_{token_id}_{'A' * len(secret)}",
        "unknown id": f"igk_ZZZZZZZZ_{secret}",
        "bad checksum": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "garbage": "not-a-token",
        "another scheme": "",
    }
    gateway = await start_gateway(clients_file=clients.path)
    answers = set()
    texts = []
    for name, token in wrong.items():
        metadata = (
            (("authorization", "Basic dXNlcjpwdw=="),)
            if name == "another scheme"
            else bearer(token)
        )
        error = await _refusal(gateway, metadata)
        answers.add((error.code(), error.details()))
        texts.append(str(error.details()) + str(error.trailing_metadata()))
    ((code, message),) = answers  # one answer, whatever was wrong
    assert code == grpc.StatusCode.UNAUTHENTICATED and message
    await _call(gateway, bearer(good))
    texts.extend(record.getMessage() + str(record.__dict__) for record in caplog.records)
    for token in (good, *wrong.values()):
        if token:
            assert not [text for text in texts if token in text]
    assert len(emulator.journal.entries) == 1


async def test_a_valid_token_names_the_caller_upstream_and_in_the_log(
    start_gateway: GatewayFactory,
    emulator: Emulator,
    clients: ClientsFile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    token = clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path)
    reply = await _call(gateway, bearer(token))
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json["safety_identifier"] == "team-a"
    (finished,) = [r for r in caplog.records if r.getMessage() == "rpc finished"]
    assert finished.client == "team-a"  # type: ignore[attr-defined]
    assert finished.images == 1  # type: ignore[attr-defined]
    assert finished.cost_usd == reply.result.cost.usd_micros / 1_000_000  # type: ignore[attr-defined]
    assert reply.result.cost.usd_micros > 0


async def test_the_callers_own_end_user_id_is_kept(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    token = clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path)
    request = pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(
            prompt="a cat", model="gpt-image-2", safety_identifier="user-42"
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        await images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage(
            request, metadata=bearer(token)
        )
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert entry.json["safety_identifier"] == "user-42"


async def test_stamping_can_be_turned_off_per_client(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    token = clients.add("team-a", stamp_identity=False)
    gateway = await start_gateway(clients_file=clients.path)
    await _call(gateway, bearer(token))
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert "safety_identifier" not in entry.json and "user" not in entry.json


async def _eventually(check: object, timeout_s: float = 10) -> None:
    """Retry ``check()`` (an async callable) until it stops raising, within the bound."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        try:
            await check()  # type: ignore[operator]
            return
        except (AssertionError, grpc.aio.AioRpcError):
            if loop.time() > end:
                raise
            await asyncio.sleep(0.1)


async def test_rotation_and_revocation_take_effect_without_a_restart(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    old = clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path, clients_reload_s=0.1)
    await _call(gateway, bearer(old))
    new = clients.add("team-a")  # rotation: both tokens work while callers move over

    async def new_works() -> None:
        await _call(gateway, bearer(new))

    await _eventually(new_works)
    await _call(gateway, bearer(old))
    clients.revoke("team-a", old)

    async def old_refused() -> None:
        try:
            await _call(gateway, bearer(old))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("the revoked token still works")

    await _eventually(old_refused)
    await _call(gateway, bearer(new))


async def test_a_malformed_file_at_reload_keeps_the_last_good_one(
    start_gateway: GatewayFactory, clients: ClientsFile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    token = clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path, clients_reload_s=0.05)
    clients.path.write_text("[clients.team-a]\nimages_per_minute = 'lots'\n")

    async def reported() -> None:
        assert [r for r in caplog.records if r.levelno >= logging.ERROR], "not reported"

    await _eventually(reported)
    await _call(gateway, bearer(token))


async def test_a_malformed_file_at_start_stops_serve_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text("[clients.team-a]\nmax_n = 0\n")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, port=0, clients_file=path, openai_api_key=OPENAI_KEY
    )
    with pytest.raises(StartupError) as caught:
        await Gateway(settings).start()
    message = str(caught.value)
    assert "\n" not in message and "max_n" in message and str(path) in message


async def test_secure_by_default_a_real_key_on_a_public_bind_needs_authentication(
    tmp_path: Path, emulator: Emulator
) -> None:
    def settings(**values: object) -> Settings:
        base: dict[str, object] = {"port": 0, "openai_base_url": emulator.base_url}
        return Settings(_env_file=None, **{**base, **values})  # type: ignore[arg-type]

    with pytest.raises(StartupError) as caught:
        await Gateway(settings(host="0.0.0.0", openai_api_key=OPENAI_KEY)).start()
    assert "IMAGEGATE_AUTH=none" in str(caught.value)
    assert OPENAI_KEY not in str(caught.value)
    # On purpose, on loopback, with authentication, or on the emulator: it serves.
    clients = ClientsFile(tmp_path / "clients.toml")
    for allowed in (
        settings(host="0.0.0.0", openai_api_key=OPENAI_KEY, auth="none"),
        settings(host="127.0.0.1", openai_api_key=OPENAI_KEY),
        settings(host="0.0.0.0", openai_api_key=OPENAI_KEY, clients_file=clients.path),
        settings(host="0.0.0.0"),  # no key: the embedded emulator
    ):
        gateway = Gateway(allowed)
        await gateway.start()
        await gateway.stop(0)


async def test_without_a_clients_file_callers_are_anonymous(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()
    await _call(gateway)
    (entry,) = emulator.journal.by_path(GENERATIONS)
    assert "safety_identifier" not in entry.json  # nobody to name


async def test_auth_none_still_refuses_a_presented_bad_token(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    token = clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path, auth="none")
    await _call(gateway)  # anonymous callers are served on purpose
    await _call(gateway, bearer(token))
    error = await _refusal(gateway, bearer("igk_nope"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    info = detail(error, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "UNAUTHENTICATED"
