"""``imagegate serve --workers 2`` with the local store: every worker stores to the one
directory, serves the one link port (SO_REUSEPORT, reserved by the supervisor) and
signs with the one key, so any worker answers any link; one worker sweeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from delivery_support import STORED, Caller, fetch
from support.serve import clean_env, serve

pytestmark = pytest.mark.slow
CHANNELS = 8


async def test_workers_share_the_link_port_and_serve_each_others_links(tmp_path: Path) -> None:
    env = clean_env(IMAGEGATE_DATA_DIR=str(tmp_path / "data"), IMAGEGATE_LOG_LEVEL="INFO")
    with serve(["--workers", "2", "--port", "0"], env, tmp_path) as server:
        port = await server.serving()
        worker_line = await asyncio.to_thread(
            server.wait_for_record, lambda r: r.get("msg") == "serving" and "worker" in r
        )
        assert worker_line["store_link_port"] > 0
        # Connections of their own, so the kernel spreads them over both workers.
        options = [("grpc.use_local_subchannel_pool", 1)]
        callers = [
            Caller(grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options), None)
            for _ in range(CHANNELS)
        ]
        try:
            results = await asyncio.gather(
                *(caller.generate(prompt=f"fox {i}", delivery=STORED) for i, caller in
                  enumerate(callers))
            )  # fmt: skip
        finally:
            for caller in callers:
                await caller.channel.close()
        ports = {r.get("store_link_port") for r in server.records() if r.get("msg") == "serving"}
        ports.discard(None)
        assert len(ports) == 1  # one link port for all workers (and both bound it)
        assert sum(r.get("msg") == "serving" and "worker" in r for r in server.records()) == 2
        links = [result.images[0].stored.url for result in results]
        for link in links:
            answer = await fetch(link)
            assert answer.status_code == 200
            assert answer.content.startswith(b"\x89PNG")
