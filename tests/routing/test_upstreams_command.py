"""``imagegate upstreams`` as an operator runs it: the CLI as a subprocess against a
gateway routing over three upstreams, one of them with an open circuit and one at
its ceiling. ``GetQuota`` names the upstreams a pinned client may use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path

import grpc
from gateway.tenancy_support import ClientsFile
from imagegate.v1 import quota_pb2, quota_pb2_grpc
from routing_support import Upstreams, gateway, generation, metadata, stub_for
from support.serve import MODULE_COMMAND, clean_env


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODULE_COMMAND, *argv],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_operator_sees_each_upstreams_circuit_headroom_and_spend(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.write(
        upstreams.entry("openai-a", images_per_minute=5),
        upstreams.entry("openai-b", priority=1),
        upstreams.entry("azure-eu", priority=2),
    )
    clients = ClientsFile(tmp_path / "clients.toml")
    operator = clients.add("ops", operator=True)
    pinned = clients.add("team-eu", upstreams=["azure-eu"])
    upstreams.emulators["openai-b"].set_faults("500")
    settings = {"clients_file": clients.path, "upstream_circuit_failures": 1}
    async with gateway(upstreams.file, **settings) as running, stub_for(running) as stub:
        for index in range(7):  # 5 to openai-a, then openai-b fails once (open), then azure
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.CreateImage(generation(f"{index}"), metadata=metadata(operator))
        target = f"127.0.0.1:{running.port}"
        listed = await asyncio.to_thread(
            _cli, "upstreams", "--target", target, "--token", operator, "--json"
        )
        table = await asyncio.to_thread(_cli, "upstreams", "--target", target, "--token", operator)
        denied = await asyncio.to_thread(_cli, "upstreams", "--target", target, "--token", pinned)
        async with grpc.aio.insecure_channel(target) as channel:
            quota = await quota_pb2_grpc.QuotaServiceStub(channel).GetQuota(
                quota_pb2.GetQuotaRequest(), metadata=metadata(pinned), timeout=30
            )
    assert listed.returncode == 0, listed.stderr
    states = {state["name"]: state for state in json.loads(listed.stdout)["upstreams"]}
    assert list(states) == ["openai-a", "openai-b", "azure-eu"]
    assert states["openai-b"]["circuit"] == "open"
    assert states["openai-a"]["circuit"] == "closed"
    (ceiling,) = states["openai-a"]["ceilings"]
    assert (ceiling["per_minute"], ceiling.get("remaining", 0)) == (5, 0)
    assert int(states["openai-a"]["spent_today_usd_micros"]) > 0
    assert int(states["azure-eu"]["spent_today_usd_micros"]) > 0
    assert "spent_today_usd_micros" not in states["openai-b"]  # it answered nothing
    assert states["azure-eu"]["kind"] == "azure" and states["azure-eu"]["models"] == ["gpt-image-2"]
    assert table.returncode == 0
    assert (
        "openai-b" in table.stdout and "open" in table.stdout and "0/5 images/min" in table.stdout
    )
    assert denied.returncode == 1 and "NOT_AN_OPERATOR" in denied.stderr + denied.stdout
    assert pinned not in denied.stderr
    assert list(quota.upstreams) == ["azure-eu"]
