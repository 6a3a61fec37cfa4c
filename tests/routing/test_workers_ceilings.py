"""``imagegate serve --workers 2`` with an upstreams file and the local store: one
upstream's ceiling is one for both workers, and every worker routes by the file."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import grpc
import pytest
from imagegate.v1 import images_service_pb2_grpc
from routing_support import Upstreams, generation
from support.serve import Serve, clean_env, serve

pytestmark = pytest.mark.slow

CONNECTIONS = 16
LIMIT = 4


def _calls_on_many_connections(port: int) -> list[str]:
    """One call on each of CONNECTIONS connections, all at once: the upstream each
    result names (the kernel spreads the connections over both workers)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(CONNECTIONS)
    ]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=30)
        futures = [
            images_service_pb2_grpc.ImagesServiceStub(channel).CreateImage.future(
                generation(f"call {i}"), timeout=60
            )
            for i, channel in enumerate(channels)
        ]
        return [str(future.result().result.upstream) for future in futures]
    finally:
        for channel in channels:
            channel.close()


def _workers(server: Serve) -> set[int]:
    return {r["worker"] for r in server.records() if r.get("msg") == "rpc finished"}


async def test_two_workers_share_an_upstreams_ceiling(upstreams: Upstreams, tmp_path: Path) -> None:
    upstreams.write(
        upstreams.entry("openai-a", images_per_minute=LIMIT),
        upstreams.entry("openai-b", priority=1),
    )
    env = clean_env(IMAGEGATE_UPSTREAMS_FILE=str(upstreams.file))
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        port = await asyncio.to_thread(server.wait_serving)
        answered = await asyncio.to_thread(_calls_on_many_connections, port)
        for _ in range(200):  # the workers' log lines come through a reader thread
            if _workers(server) == {0, 1}:
                break
            await asyncio.sleep(0.05)
        assert _workers(server) == {0, 1}  # both routed calls: else this proves nothing
    a = upstreams.emulators["openai-a"].journal.entries
    window_s = max(e.started_at for e in a) - min(e.started_at for e in a)
    # A ceiling kept per worker would send up to 2 x LIMIT calls to openai-a.
    assert LIMIT <= Counter(answered)["openai-a"] <= LIMIT + int(window_s * LIMIT / 60)
    assert Counter(answered)["openai-b"] == CONNECTIONS - Counter(answered)["openai-a"]
