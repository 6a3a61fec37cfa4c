"""What a misbehaving upstream can make a gateway process hold: its memory peak (VmHWM)
over each bad answer, under a stated bound.

The gateway runs as ``imagegate serve`` in its own process (the test's own memory is
not the gateway's) in front of the bad server of ``tests/support/bad_upstream.py``.
Before the bounds, a 407 KB gzip answer that unpacked to 400 MB took a gateway to
1,200 MB, a 400 MB error body to 2,332 MB (a gzipped one to 3,132 MB), and a 300 MB
streamed "image" went through whole.

The bounds stated here: a 1024x1024 PNG call may be answered with at most ~7 MB of
base64 (4 bytes per pixel plus 1 MiB, in base64), so refusing any larger answer costs
the gateway at most :data:`SMALL_BOUND`; a call with ``size=auto`` on gpt-image-2 may
be answered with up to ~46 MB (its 3840x2160 pixel limit), so :data:`AUTO_BOUND`.
Each is the growth of the peak over the RSS just before the call, the calls one at a
time after warm-up calls.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import grpc
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2
from support.bad_upstream import (
    KEY,
    MIB,
    SSE_HEADER,
    BadUpstream,
    Reply,
    answer,
    events,
    gzipped,
    huge_answer,
    huge_error,
    huge_event,
    json_reply,
    reply,
    usage,
)
from support.serve import clean_env, serve

from imagegate_server.bench.usage import RssSampler, rss_bytes

HUGE = 400 * MIB
SMALL_BOUND = 16 * MIB
AUTO_BOUND = 64 * MIB
SIZED = params_pb2.GenerationParameters(prompt="a bay", model="gpt-image-2", size="1024x1024")
AUTO = params_pb2.GenerationParameters(prompt="a bay", model="gpt-image-2")


@dataclass(frozen=True)
class Case:
    name: str
    reply: Reply
    bound: int
    auto_size: bool = False
    stream: bool = False

    @property
    def parameters(self) -> params_pb2.GenerationParameters:
        return AUTO if self.auto_size else SIZED


GZIP = ("content-encoding", "gzip")
CASES = [
    Case(
        "gzip answer, 400 MB unpacked",
        reply(200, lambda: gzipped("answer", HUGE), GZIP, chunked=True),
        SMALL_BOUND,
    ),
    Case("400 MB answer, declared", reply(200, huge_answer(HUGE), length=HUGE), SMALL_BOUND),
    Case("400 MB answer, chunked", reply(200, huge_answer(HUGE), chunked=True), SMALL_BOUND),
    Case("400 MB error body", reply(500, huge_error(HUGE), chunked=True), SMALL_BOUND),
    Case(
        "gzip error body, 400 MB unpacked",
        reply(500, lambda: gzipped("error", HUGE), GZIP, chunked=True),
        SMALL_BOUND,
    ),
    Case(
        "300 MB streamed image",
        reply(200, huge_event(300 * MIB), SSE_HEADER, chunked=True),
        SMALL_BOUND,
        stream=True,
    ),
    Case(
        "400 MB answer to size=auto",
        reply(200, huge_answer(HUGE), chunked=True),
        AUTO_BOUND,
        auto_size=True,
    ),
]


async def _call(channel: grpc.aio.Channel, case: Case) -> grpc.StatusCode:
    stub = images_service_pb2_grpc.ImagesServiceStub(channel)
    try:
        if case.stream:
            request = pb.CreateImageStreamRequest(parameters=case.parameters)
            async for _ in stub.CreateImageStream(request, timeout=120):
                pass
        else:
            await stub.CreateImage(pb.CreateImageRequest(parameters=case.parameters), timeout=120)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_each_bad_answer_costs_a_gateway_process_a_bounded_peak(tmp_path: Path) -> None:
    env = clean_env(IMAGEGATE_OPENAI_API_KEY=KEY)
    async with BadUpstream() as bad:
        env["IMAGEGATE_OPENAI_BASE_URL"] = bad.base_url
        with serve(["--port", "0"], env, tmp_path) as gateway:
            port = await gateway.serving()
            pid = gateway.process.pid
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                # Warm-up: what any call allocates once (pools, caches, code paths).
                good = answer(usage())
                completed = {"type": "image_generation.completed", **good["data"][0]}  # type: ignore[index]
                for case in CASES:
                    if case.stream:
                        bad.script(reply(200, events(completed), SSE_HEADER, chunked=True))
                    else:
                        bad.script(json_reply(good))
                    assert await _call(channel, case) == grpc.StatusCode.OK
                peaks: dict[str, tuple[int, int, grpc.StatusCode]] = {}
                for case in CASES:
                    bad.script(case.reply)
                    await asyncio.sleep(0.5)  # the previous call's connection closed
                    before = rss_bytes(pid)
                    async with RssSampler(pid, interval_s=0.01) as rss:
                        code = await _call(channel, case)
                    peaks[case.name] = (rss.peak - before, case.bound, code)
    report = "; ".join(
        f"{name}: +{grown / MIB:.1f} MiB (bound {bound // MIB}), {code.name}"
        for name, (grown, bound, code) in peaks.items()
    )
    print(report)  # the measured peaks, for the record (pytest -s)
    assert all(code == grpc.StatusCode.UNAVAILABLE for _, _, code in peaks.values()), report
    assert all(grown <= bound for grown, bound, _ in peaks.values()), report
