"""Several ``imagegate serve`` processes (replicas) on one Redis and one emulator.

Each replica is a real process started as an operator would (``--port 0
--port-file``, settings in ``IMAGEGATE_*``), its JSON log lines on stderr collected
for the test. Callers reach a replica through several channels, each its own TCP
connection, so a burst is spread the way a load balancer would spread it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from gateway.gateway_support import detail
from google.rpc import error_details_pb2
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import images_service_pb2_grpc, params_pb2, quota_pb2, quota_pb2_grpc
from support.serve import Serve, clean_env

# Distinctive, so a test can search every replica's output for it.
OPENAI_KEY = "sk-replicatest-SECRETKEY-0123456789abcdef"
GENERATIONS = "/v1/images/generations"
REPLICAS = 3
CHANNELS_PER_REPLICA = 3
CALL_TIMEOUT_S = 60.0
Metadata = tuple[tuple[str, str], ...]


def generation(prompt: str = "a red fox", n: int = 1) -> pb.CreateImageRequest:
    """A cheap, priced call: gpt-image-2 at low quality, 1024x1024 (cached renders)."""
    parameters = params_pb2.GenerationParameters(
        prompt=prompt, model="gpt-image-2", n=n, quality=params_pb2.QUALITY_LOW, size="1024x1024"
    )
    return pb.CreateImageRequest(parameters=parameters)


@dataclass(frozen=True)
class SharedRedis:
    """What the replicas of a test share: a Redis of some shape, under a prefix."""

    shape: str
    url: str
    prefix: str
    """IMAGEGATE_REDIS_PREFIX for the replicas: the session's Cluster is shared."""


@dataclass
class Replica:
    index: int
    serve: Serve
    port: int = 0
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    _next: int = 0

    def channel(self) -> grpc.aio.Channel:
        """The replica's channels in turn."""
        channel = self.channels[self._next % len(self.channels)]
        self._next += 1
        return channel

    async def create(
        self, request: pb.CreateImageRequest, metadata: Metadata
    ) -> pb.CreateImageResponse:
        stub = images_service_pb2_grpc.ImagesServiceStub(self.channel())
        response: pb.CreateImageResponse = await stub.CreateImage(
            request, metadata=metadata, timeout=CALL_TIMEOUT_S
        )
        return response

    async def quota(self, metadata: Metadata) -> quota_pb2.GetQuotaResponse:
        stub = quota_pb2_grpc.QuotaServiceStub(self.channel())
        response: quota_pb2.GetQuotaResponse = await stub.GetQuota(
            quota_pb2.GetQuotaRequest(), metadata=metadata, timeout=CALL_TIMEOUT_S
        )
        return response

    def records(self) -> list[dict[str, Any]]:
        return self.serve.records()

    def kill(self) -> None:
        """SIGKILL: no drain, no settle, nothing the process could still say."""
        self.serve.kill()


@asynccontextmanager
async def replicas(
    workdir: Path,
    *,
    emulator_url: str,
    clients_file: Path,
    redis_url: str | Sequence[str],
    count: int = REPLICAS,
    **settings: str,
) -> AsyncIterator[list[Replica]]:
    """``count`` gateway processes sharing one emulator, one clients file and one Redis
    (``redis_url``, or one URL per replica: a Cluster seeded differently in each).

    ``settings`` are extra ``IMAGEGATE_*`` variables (without the prefix, any case).
    Started together; yielded once every one has written its port file and answers.
    """
    urls = [redis_url] * count if isinstance(redis_url, str) else list(redis_url)
    env = clean_env(
        IMAGEGATE_OPENAI_API_KEY=OPENAI_KEY,
        IMAGEGATE_OPENAI_BASE_URL=emulator_url,
        IMAGEGATE_CLIENTS_FILE=str(clients_file),
        IMAGEGATE_SHUTDOWN_GRACE_S="0",
        **{f"IMAGEGATE_{name.upper()}": value for name, value in settings.items()},
    )
    started: list[Replica] = []
    try:
        for index, url in zip(range(count), urls, strict=True):
            cwd = workdir / f"replica-{index}"
            cwd.mkdir(parents=True, exist_ok=True)
            own_env = env | {"IMAGEGATE_REDIS_URL": url}
            started.append(Replica(index, Serve(["--port", "0"], own_env, cwd)))
        # The port-file wait polls with time.sleep: serving() runs it off the loop,
        # so the test's own emulator keeps answering meanwhile.
        ports = await asyncio.gather(*(replica.serve.serving() for replica in started))
        # A local subchannel pool each: a TCP connection of its own per channel.
        options = [("grpc.use_local_subchannel_pool", 1)]
        for replica, port in zip(started, ports, strict=True):
            replica.port = port
            replica.channels = [
                grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
                for _ in range(CHANNELS_PER_REPLICA)
            ]
            for channel in replica.channels:
                await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_S)
        yield started
    finally:
        for replica in started:
            for channel in replica.channels:
                await channel.close(None)
            await asyncio.to_thread(replica.kill)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def status_code(outcome: object) -> grpc.StatusCode:
    """OK for an answer, else the error's code (anything but a gRPC error is re-raised)."""
    if isinstance(outcome, grpc.aio.AioRpcError):
        return outcome.code()
    if isinstance(outcome, BaseException):
        raise outcome
    return grpc.StatusCode.OK


def split(
    outcomes: Iterable[object],
) -> tuple[list[pb.CreateImageResponse], list[grpc.aio.AioRpcError]]:
    """``asyncio.gather(..., return_exceptions=True)`` of calls: answers and gRPC errors
    (anything else is the test's own failure, re-raised)."""
    answers, errors = [], []
    for outcome in outcomes:
        if isinstance(outcome, pb.CreateImageResponse):
            answers.append(outcome)
        elif isinstance(outcome, grpc.aio.AioRpcError):
            errors.append(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            raise AssertionError(f"not an answer: {outcome!r}")
    return answers, errors


def quota_id(error: grpc.aio.AioRpcError) -> str:
    failure = detail(error, error_details_pb2.QuotaFailure)
    assert isinstance(failure, error_details_pb2.QuotaFailure), error
    (violation,) = failure.violations
    return str(violation.quota_id)


def error_reason(error: grpc.aio.AioRpcError) -> str:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo), error
    return str(info.reason)


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.05
) -> float:
    """Poll ``check`` until it holds; returns the wall time (``time.time()``) it did."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return time.time()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def log_lines(fleet: Iterable[Replica]) -> list[str]:
    """Everything every replica wrote to stderr so far."""
    return [line for replica in fleet for line in replica.serve.lines]


def assert_never_logged(fleet: Iterable[Replica], secrets: Iterable[str]) -> None:
    """No secret (a token, its secret part, the OpenAI key) in any replica's output."""
    lines = log_lines(fleet)
    assert lines, "the replicas logged nothing at all: the check would prove nothing"
    for secret in secrets:
        leaked = [line for line in lines if secret in line]
        assert not leaked, f"a secret reached a replica's log: {leaked[0][:200]}"


def token_secret(token: str) -> str:
    """The secret part of ``igk_<id>_<secret><checksum>`` (the id is not secret)."""
    return token.removeprefix("igk_").split("_", 1)[1]
