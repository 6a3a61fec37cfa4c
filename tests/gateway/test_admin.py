"""AdminService.ListClientSpend: every client's spend, for operator clients only, from
whichever store the limiter uses (the memory store can be read no other way)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory, detail
from google.rpc import error_details_pb2
from imagegate.v1 import admin_pb2, admin_pb2_grpc, images_service_pb2_grpc, params_pb2
from imagegate.v1 import images_service_pb2 as pb
from tenancy_support import ClientsFile, bearer

# A 256x256 dall-e-2 image costs $0.016 by the built-in price table.
IMAGE = pb.CreateImageRequest(
    parameters=params_pb2.GenerationParameters(prompt="a fox", model="dall-e-2", size="256x256")
)


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")


async def _list(
    channel: grpc.aio.Channel, token: str | None, **request: int
) -> admin_pb2.ListClientSpendResponse:
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    metadata = bearer(token) if token else ()
    answer: admin_pb2.ListClientSpendResponse = await stub.ListClientSpend(
        admin_pb2.ListClientSpendRequest(**request), metadata=metadata, timeout=30
    )
    return answer


@pytest.mark.parametrize("store", ["local", "memory"])
async def test_an_operator_sees_every_clients_spend_and_budgets(
    start_gateway: GatewayFactory, clients: ClientsFile, store: str
) -> None:
    team_a = clients.add("team-a", daily_budget_usd="5", monthly_budget_usd="50")
    team_b = clients.add("team-b")
    clients.add("idle")
    operator = clients.add("ops", operator=True)
    gateway = await start_gateway(clients_file=clients.path, limits_store=store)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        images = images_service_pb2_grpc.ImagesServiceStub(channel)
        for token in (team_a, team_a, team_b):
            await images.CreateImage(IMAGE, metadata=bearer(token), timeout=30)
        answer = await _list(channel, operator)

    assert [
        (c.client, c.spent_today_usd_micros, c.spent_this_month_usd_micros, c.calls_in_flight)
        for c in answer.clients
    ] == [("team-a", 32_000, 32_000, 0), ("team-b", 16_000, 16_000, 0)]
    team_a_entry, team_b_entry = answer.clients
    assert team_a_entry.daily_budget_usd_micros == 5_000_000
    assert team_a_entry.monthly_budget_usd_micros == 50_000_000
    assert not team_b_entry.HasField("daily_budget_usd_micros")
    assert answer.limits_store == store
    assert answer.truncated is False
    assert answer.price_table
    as_of = answer.as_of.ToDatetime(UTC)
    assert abs((as_of - datetime.now(UTC)).total_seconds()) < 5


async def test_only_operator_clients_may_list_spend(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    caller = clients.add("team-a")
    gateway = await start_gateway(clients_file=clients.path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await _list(channel, caller)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await _list(channel, None)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = detail(denied.value, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.metadata["client"]) == ("NOT_AN_OPERATOR", "team-a")
    assert "operator = true" in (denied.value.details() or "")
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_anonymous_callers_are_never_operators(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()  # no clients file: callers are anonymous
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await _list(channel, None)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_listing_is_bounded_and_says_when_clients_were_left_out(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    tokens = [clients.add(f"team-{i}") for i in range(3)]
    operator = clients.add("ops", operator=True)
    gateway = await start_gateway(clients_file=clients.path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        images = images_service_pb2_grpc.ImagesServiceStub(channel)
        for token in tokens:
            await images.CreateImage(IMAGE, metadata=bearer(token), timeout=30)
        first_two = await _list(channel, operator, max_clients=2)
        with pytest.raises(grpc.aio.AioRpcError) as too_many:
            await _list(channel, operator, max_clients=10_001)
    assert [c.client for c in first_two.clients] == ["team-0", "team-1"]
    assert first_two.truncated is True
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = detail(too_many.value, error_details_pb2.BadRequest)
    assert isinstance(violations, error_details_pb2.BadRequest)
    assert violations.field_violations[0].field == "max_clients"
