"""Each caller inside its share: policy refusals, rate, concurrency and budget limits,
the cost every result carries, and the caller's own view of it (QuotaService)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from gateway_support import GatewayFactory, assemble, detail
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc, results_pb2
from tenancy_support import ClientsFile, bearer

from imagegate_server.emulator import Emulator
from imagegate_server.gateway.server import Gateway

GENERATIONS = "/v1/images/generations"


@pytest.fixture
def clients(tmp_path: Path) -> ClientsFile:
    return ClientsFile(tmp_path / "clients.toml")


def generation(**fields: object) -> pb.CreateImageRequest:
    values: dict[str, object] = {"prompt": "a cat", "model": "gpt-image-2", **fields}
    return pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(**values))  # type: ignore[arg-type]


class Caller:
    def __init__(self, gateway: Gateway, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
        self.images = images_service_pb2_grpc.ImagesServiceStub(self.channel)
        self.quota = quota_pb2_grpc.QuotaServiceStub(self.channel)
        self.metadata = bearer(token)

    async def create(self, request: pb.CreateImageRequest) -> results_pb2.ImagesResult:
        reply = await self.images.CreateImage(request, metadata=self.metadata, timeout=30)
        return reply.result

    async def refused(self, request: pb.CreateImageRequest) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.create(request)
        return caught.value

    async def get_quota(self) -> quota_pb2.GetQuotaResponse:
        return await self.quota.GetQuota(quota_pb2.GetQuotaRequest(), metadata=self.metadata)

    async def close(self) -> None:
        await self.channel.close()


async def caller_of(
    start_gateway: GatewayFactory, clients: ClientsFile, **policy: object
) -> Caller:
    token = clients.add("team-a", **policy)
    gateway = await start_gateway(clients_file=clients.path)
    return Caller(gateway, token)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    return info


def quota_failure(error: grpc.aio.AioRpcError) -> error_details_pb2.QuotaFailure.Violation:
    failure = detail(error, error_details_pb2.QuotaFailure)
    assert isinstance(failure, error_details_pb2.QuotaFailure)
    (violation,) = failure.violations
    return violation


def retry_after_s(error: grpc.aio.AioRpcError) -> float | None:
    info = detail(error, error_details_pb2.RetryInfo)
    if info is None:
        return None
    assert isinstance(info, error_details_pb2.RetryInfo)
    return info.retry_delay.ToNanoseconds() / 1e9


@pytest.mark.parametrize(
    ("policy", "request_fields", "reason"),
    [
        ({"models": ["gpt-image-2.5-*"]}, {}, "MODEL_NOT_ALLOWED"),
        ({"operations": ["edit"]}, {}, "OPERATION_NOT_ALLOWED"),
        ({"max_n": 2}, {"n": 3}, "N_ABOVE_CLIENT_LIMIT"),
    ],
)
async def test_what_the_policy_forbids_is_permission_denied_before_going_upstream(
    start_gateway: GatewayFactory,
    emulator: Emulator,
    clients: ClientsFile,
    policy: dict[str, object],
    request_fields: dict[str, object],
    reason: str,
) -> None:
    caller = await caller_of(start_gateway, clients, **policy)
    error = await caller.refused(generation(**request_fields))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(error)
    assert (info.reason, info.metadata["client"]) == (reason, "team-a")
    assert emulator.journal.entries == []
    await caller.close()


@pytest.mark.parametrize(("max_n", "limit"), [(1, "1 image"), (2, "2 images")])
async def test_the_max_n_refusal_counts_in_words(
    start_gateway: GatewayFactory, clients: ClientsFile, max_n: int, limit: str
) -> None:
    caller = await caller_of(start_gateway, clients, max_n=max_n)
    error = await caller.refused(generation(n=max_n + 1))
    assert error.details() == f"client 'team-a' may ask for at most {limit} per call"
    await caller.close()


async def test_requests_per_minute_refuse_with_quota_failure_and_when_it_frees(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, requests_per_minute=2)
    await caller.create(generation())
    await caller.create(generation())
    error = await caller.refused(generation())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    violation = quota_failure(error)
    assert (violation.subject, violation.quota_id) == ("client:team-a", "requests_per_minute")
    wait = retry_after_s(error)
    assert wait is not None and 0 < wait <= 30  # one request frees every 30 s
    assert len(emulator.journal.entries) == 2
    await caller.close()


async def test_images_per_minute_count_each_calls_n(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, images_per_minute=5)
    await caller.create(generation(n=3))
    error = await caller.refused(generation(n=3))  # 6 > 5: refused, and nothing charged
    assert quota_failure(error).quota_id == "images_per_minute"
    await caller.create(generation(n=2))  # 5 <= 5
    assert [e.json["n"] for e in emulator.journal.entries] == [3, 2]
    await caller.close()


async def test_a_call_larger_than_the_whole_burst_is_refused_without_retry_info(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, images_per_minute=2)
    error = await caller.refused(generation(n=3))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_after_s(error) is None  # waiting never helps
    await caller.close()


async def test_the_gateway_wide_ceiling_is_shared_by_every_client(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    one, two = clients.add("team-a"), clients.add("team-b")
    gateway = await start_gateway(clients_file=clients.path, gateway_images_per_minute=3)
    a, b = Caller(gateway, one), Caller(gateway, two)
    await a.create(generation(n=2))
    error = await b.refused(generation(n=2))
    violation = quota_failure(error)
    assert (violation.subject, violation.quota_id) == ("gateway", "gateway_images_per_minute")
    await b.create(generation(n=1))
    await a.close()
    await b.close()


async def test_concurrent_calls_over_the_limit_are_refused(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, max_concurrent=1)
    emulator.set_faults("delay;ms=1500")
    first = asyncio.create_task(caller.create(generation()))
    await emulator.journal.wait_for(lambda entries: len(entries) == 1, timeout_s=10)
    error = await caller.refused(generation())
    assert quota_failure(error).quota_id == "concurrent_calls"
    await first
    emulator.set_faults("")
    await caller.create(generation())  # the slot was freed when the first call ended
    await caller.close()


async def test_every_result_carries_its_cost_from_the_usage(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients)
    result = await caller.create(generation(n=2, quality=params_pb2.QUALITY_LOW))
    assert result.cost.basis == results_pb2.COST_BASIS_USAGE
    assert result.cost.price_table.startswith("2026-")
    # gpt-image-2: $5 / 1M text-in tokens, $8 image-in, $30 image-out.
    usage = result.usage
    expected = (
        usage.input_tokens_details.text_tokens * 5
        + usage.input_tokens_details.image_tokens * 8
        + usage.output_tokens * 30
    )
    assert result.cost.usd_micros == round(expected)
    quota = await caller.get_quota()
    assert quota.spent_today_usd_micros == result.cost.usd_micros
    await caller.close()


async def test_a_streamed_call_costs_what_the_same_unary_call_costs(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients)
    unary = await caller.create(generation(n=3, quality=params_pb2.QUALITY_LOW))
    stream = caller.images.CreateImageStream(
        pb.CreateImageStreamRequest(
            parameters=generation(n=3, quality=params_pb2.QUALITY_LOW).parameters
        ),
        metadata=caller.metadata,
    )
    _, _, streamed = assemble([event async for event in stream])
    assert streamed.usage == unary.usage
    assert streamed.cost == unary.cost and streamed.cost.usd_micros > 0
    # Partial images cost what OpenAI bills for them: 100 image tokens each ($30 / 1M).
    partial = caller.images.CreateImageStream(
        pb.CreateImageStreamRequest(
            parameters=generation(n=3, quality=params_pb2.QUALITY_LOW, partial_images=2).parameters
        ),
        metadata=caller.metadata,
    )
    _, partials, with_partials = assemble([event async for event in partial])
    assert len(partials) == 6
    assert with_partials.cost.usd_micros - unary.cost.usd_micros == 3 * 2 * 100 * 30
    await caller.close()


async def test_a_budget_admits_calls_until_its_spend_and_reservations_reach_it(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, daily_budget_usd=0.1)
    spent = 0
    for _ in range(20):
        try:
            spent += (
                await caller.create(generation(quality=params_pb2.QUALITY_LOW))
            ).cost.usd_micros
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            violation = quota_failure(error)
            assert violation.quota_id == "daily_budget"
            wait = retry_after_s(error)
            assert wait is not None and 0 < wait <= 86400  # at the next UTC midnight
            break
    else:
        raise AssertionError("a $0.10 budget admitted 20 calls")
    quota = await caller.get_quota()
    (budget,) = quota.budgets
    assert (budget.name, budget.period) == ("daily_budget", quota_pb2.BUDGET_PERIOD_DAY)
    assert budget.limit_usd_micros == 100_000
    assert budget.spent_usd_micros == spent == quota.spent_today_usd_micros
    assert budget.reserved_usd_micros == 0
    assert len(emulator.journal.entries) == spent // (spent // len(emulator.journal.entries))
    await caller.close()


async def test_a_failed_call_releases_its_reservation(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, daily_budget_usd=1)
    emulator.set_faults("moderation")
    await caller.refused(generation())
    quota = await caller.get_quota()
    assert (quota.spent_today_usd_micros, quota.reserved_usd_micros) == (0, 0)
    await caller.close()


async def test_a_call_cut_off_after_it_reached_openai_is_charged_its_estimate(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    # OpenAI bills a generation whose answer is lost; so does the gateway, at the estimate.
    caller = await caller_of(start_gateway, clients, daily_budget_usd=1)
    emulator.set_faults("reset;after=10")
    error = await caller.refused(generation())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    quota = await caller.get_quota()
    assert quota.spent_today_usd_micros > 0 and quota.reserved_usd_micros == 0
    await caller.close()


async def test_a_model_without_a_price_is_refused_for_a_client_with_a_budget(
    start_gateway: GatewayFactory, emulator: Emulator, clients: ClientsFile
) -> None:
    caller = await caller_of(start_gateway, clients, daily_budget_usd=1)
    error = await caller.refused(generation(model="gpt-image-9-preview"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "MODEL_UNPRICED"
    assert emulator.journal.entries == []
    await caller.close()


async def test_get_quota_shows_the_callers_limits_and_what_remains(
    start_gateway: GatewayFactory, clients: ClientsFile
) -> None:
    caller = await caller_of(
        start_gateway,
        clients,
        requests_per_minute=10,
        images_per_minute=20,
        max_concurrent=3,
        max_n=4,
        models=["gpt-image-2*"],
        operations=["generation", "edit"],
    )
    await caller.create(generation(n=2))
    quota = await caller.get_quota()
    rates = {rate.name: rate for rate in quota.rates}
    assert rates["requests_per_minute"].per_minute == 10
    assert rates["requests_per_minute"].remaining == 9
    assert rates["images_per_minute"].remaining == 18
    assert (quota.concurrency.max_concurrent, quota.concurrency.in_use) == (3, 0)
    assert quota.max_n == 4 and not quota.all_models
    assert list(quota.model_patterns) == ["gpt-image-2*"]
    assert set(quota.operations) == {quota_pb2.OPERATION_GENERATION, quota_pb2.OPERATION_EDIT}
    assert quota.client == "team-a" and quota.price_table
    await caller.close()


async def test_get_quota_is_logged_with_its_client(
    start_gateway: GatewayFactory, clients: ClientsFile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caller = await caller_of(start_gateway, clients)
    await caller.get_quota()
    (finished,) = [r for r in caplog.records if r.getMessage() == "rpc finished"]
    assert (finished.rpc, finished.client) == ("GetQuota", "team-a")  # type: ignore[attr-defined]
    await caller.close()
