"""An upstream's own ceiling, and its spend, held by three replicas on one Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gateway.tenancy_support import ClientsFile
from imagegate.v1 import admin_pb2, admin_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from limits.redis_support import RedisServer
from replica_support import (
    GENERATIONS,
    OPENAI_KEY,
    assert_never_logged,
    bearer,
    generation,
    replicas,
    split,
)

from imagegate_server.emulator import Emulator

pytestmark = pytest.mark.slow

LIMIT = 12


def _upstreams_file(tmp_path: Path, url: str) -> Path:
    key = tmp_path / "openai.key"
    key.write_text(OPENAI_KEY)
    path = tmp_path / "upstreams.toml"
    path.write_text(
        f"""
[upstreams.capped]
kind = "compatible"
base_url = "{url}"
key_file = "{key}"
images_per_minute = {LIMIT}

[upstreams.overflow]
kind = "compatible"
base_url = "{url}"
key_file = "{key}"
priority = 1
"""
    )
    return path


async def test_three_replicas_share_an_upstreams_ceiling_and_its_spend(
    tmp_path: Path, redis_server: RedisServer, emulator: Emulator, clients: ClientsFile
) -> None:
    token = clients.add("burst")
    operator = clients.add("ops", operator=True)
    upstreams = _upstreams_file(tmp_path, emulator.base_url)
    async with replicas(
        tmp_path, emulator_url=emulator.base_url, clients_file=clients.path,
        redis_url=redis_server.url, upstreams_file=str(upstreams),
    ) as fleet:  # fmt: skip
        # 20 calls per replica: a ceiling counted per replica would send each of them
        # LIMIT calls to "capped", three times its ceiling.
        calls = [fleet[i % 3] for i in range(60)]
        outcomes = await asyncio.gather(
            *(r.create(generation(f"call {i}"), bearer(token)) for i, r in enumerate(calls)),
            return_exceptions=True,
        )
        stub = admin_pb2_grpc.AdminServiceStub(fleet[0].channel())
        listing = await stub.ListUpstreams(
            admin_pb2.ListUpstreamsRequest(), metadata=bearer(operator), timeout=30
        )
        assert_never_logged(fleet, [OPENAI_KEY])
    answers, errors = split(outcomes)
    assert errors == []
    by_upstream: dict[str, list[pb.CreateImageResponse]] = {"capped": [], "overflow": []}
    for answer in answers:
        by_upstream[answer.result.upstream].append(answer)
    upstream = emulator.journal.by_path(GENERATIONS)
    window_s = max(e.started_at for e in upstream) - min(e.started_at for e in upstream)
    capped = len(by_upstream["capped"])
    # The burst at once, then one image per 60 s / LIMIT over the calls' window.
    assert LIMIT <= capped <= LIMIT + int(window_s * LIMIT / 60) + 1, (capped, window_s)
    assert len(upstream) == 60  # every call generated exactly once
    # Spend per upstream, booked by every replica into Redis, as one replica lists it.
    listed = {state.name: state for state in listing.upstreams}
    assert listing.from_file and listing.limits_store == "redis"
    for name, answered in by_upstream.items():
        cost = sum(answer.result.cost.usd_micros for answer in answered)
        assert cost > 0
        assert listed[name].spent_today_usd_micros == cost
    (ceiling,) = listed["capped"].ceilings
    assert (ceiling.name, ceiling.per_minute) == ("upstream_images_per_minute", LIMIT)
    assert ceiling.remaining < LIMIT
    assert listed["overflow"].ceilings == []
