"""The key canary: no upstream's key, in any form an upstream might echo it, reaches a
log line, a caller's status or the metrics, whatever each upstream answers."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from gateway.tenancy_support import ClientsFile
from imagegate.v1 import admin_pb2, admin_pb2_grpc
from imagegate.v1 import images_service_pb2 as pb
from prometheus_client import generate_latest
from routing_support import KEYS, Upstreams, gateway, generation, metadata, stub_for
from support.bad_upstream import BadUpstream, json_reply

ECHO_KEY = "echo-upstream-KEY-4f1e9a0b7c2d"
WRONG_KEY = "sk-routetest-WRONG-SECRETKEY-5555555555"


def _statuses(error: grpc.aio.AioRpcError) -> str:
    return " ".join([str(error.code()), error.details() or "", repr(error.trailing_metadata())])


async def test_no_key_of_any_upstream_reaches_logs_statuses_or_metrics(
    upstreams: Upstreams, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "wrong.key").write_text(WRONG_KEY)
    (tmp_path / "echo.key").write_text(ECHO_KEY)
    upstreams.emulators["azure-eu"].set_faults("moderation;first=1,429;retry-after=9")
    async with BadUpstream() as echo:
        # An upstream that quotes the key it was sent, whole, in its errors.
        echo.script(
            json_reply({"error": {"message": f"key {ECHO_KEY} refused", "code": ECHO_KEY}}, 400),
            json_reply({"error": {"message": f"Bearer {ECHO_KEY} is over quota"}}, 429),
        )
        upstreams.write(
            upstreams.entry("openai-a"),
            upstreams.entry("azure-eu"),
            upstreams.entry("openai-b", key_file=str(tmp_path / "wrong.key")),
            f'[upstreams.echo]\nkind = "compatible"\nbase_url = "{echo.base_url}"\n'
            f'key_file = "{tmp_path / "echo.key"}"\n',
        )
        clients = ClientsFile(tmp_path / "clients.toml")
        tokens = {
            name: clients.add(f"team-{name}", upstreams=[name], operator=True)
            for name in ("openai-a", "azure-eu", "openai-b", "echo")
        }
        seen: list[str] = []
        # No retries: a 429's retry-after would only make the test wait.
        async with gateway(
            upstreams.file,
            clients_file=clients.path,
            upstream_circuit_failures=100,
            max_retries=0,
        ) as running:
            async with stub_for(running) as stub:
                for token in tokens.values():
                    for index in range(3):
                        try:
                            reply = await stub.CreateImage(
                                generation(f"call {index}"), metadata=metadata(token), timeout=30
                            )
                            seen.append(str(reply.result.upstream))
                        except grpc.aio.AioRpcError as error:
                            seen.append(_statuses(error))
                    request = pb.CreateImageStreamRequest(parameters=generation().parameters)
                    try:
                        async for item in stub.CreateImageStream(
                            request, metadata=metadata(token), timeout=30
                        ):
                            seen.append(str(item))
                    except grpc.aio.AioRpcError as error:
                        seen.append(_statuses(error))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                listing = await admin_pb2_grpc.AdminServiceStub(channel).ListUpstreams(
                    admin_pb2.ListUpstreamsRequest(),
                    metadata=metadata(tokens["echo"]),
                    timeout=30,
                )
                seen.append(str(listing))
            exposition = generate_latest(running.metrics.registry).decode()
    # Every upstream was reached, and each failed in its own way at least once.
    assert len(echo.requests) >= 3
    assert any("UPSTREAM_AUTHENTICATION" in text for text in seen)  # openai-b's wrong key
    assert any("moderation_blocked" in text for text in seen)  # Azure's content filter
    logged = [f"{record.getMessage()} {record.__dict__}" for record in caplog.records]
    assert logged and exposition
    for key in (*KEYS.values(), WRONG_KEY, ECHO_KEY):
        for where, texts in (("log", logged), ("status", seen), ("metrics", [exposition])):
            leaked = [text for text in texts if key in text]
            assert not leaked, f"a key reached a {where}: {leaked[0][:300]}"
