"""soak: a fixed number of calls with injected faults; no image reaches the wrong caller.

Every call is a unary CreateImage (256x256 dall-e-2, b64_json) with its own prompt,
so its image carries its own identity (``read_identity(image) == identity(prompt, 0)``).
The calls go in batches of ``concurrency``, all in flight together. Before each
batch the soak sets the emulator's default faults over its control route
(``POST /_emulator/faults``; the gateway forwards no caller header upstream): every
other batch is clean, the others take turns through the fault kinds below, each
applied to the batch's first K upstream requests (``first=K;key=...``, a fresh key
per batch). Retryable kinds (429 with retry-after-ms, 503 with x-should-retry) must
be retried and succeed; the others must reach the caller as the README's error
table says.

Afterwards the emulator's journal tells, per prompt, which upstream attempts its
call made and which faults each took, so every call is judged on its own:

- a call whose attempts took only retryable faults (or none) must succeed with its
  own image, after exactly one attempt more than it had faults;
- a call that took a non-retryable fault must fail with that fault's code, and that
  attempt must be its last.

Also reported: the gateway's RSS at the first batch's end and at the last (its
drift), and its CPU per call. With ``--target HOST:PORT --emulator URL`` it soaks a
running gateway whose upstream is that emulator (plaintext gRPC; ``--token`` for a
gateway that requires one; ``--gateway-pid`` of a local one for its RSS); else it
starts its own emulator and gateway on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import grpc
import httpx
from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server.bench.clients import GrpcPool
from imagegate_server.bench.loadgen import PYTHON_GRPC
from imagegate_server.bench.measure import LoadResult, error_name
from imagegate_server.bench.model import MIB, Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import StackConfig, running_stack
from imagegate_server.bench.soak_verdicts import (
    KINDS,
    FaultKind,
    Outcome,
    Tally,
    attempts_by_prompt,
    judge,
)
from imagegate_server.bench.usage import tree_cpu_seconds, tree_rss_bytes
from imagegate_server.emulator import identity, read_identity

NAME = "soak"
DEFAULT_CALLS, DEFAULT_CONCURRENCY = 2000, 16
TINY_CALLS, TINY_CONCURRENCY = 48, 4
CALL_TIMEOUT_S = 30.0


def _emulator_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _request(prompt: str) -> pb.CreateImageRequest:
    return pb.CreateImageRequest(
        parameters=params_pb2.GenerationParameters(
            prompt=prompt,
            model="dall-e-2",
            size="256x256",
            response_format=params_pb2.RESPONSE_FORMAT_B64_JSON,
        )
    )


async def _call(pool: GrpcPool, prompt: str, metadata: tuple[tuple[str, str], ...]) -> Outcome:
    began = time.perf_counter()
    try:
        reply = await pool.stub().CreateImage(
            _request(prompt), metadata=metadata, timeout=CALL_TIMEOUT_S
        )
    except grpc.aio.AioRpcError as exc:
        return Outcome(prompt, exc.code().name, time.perf_counter() - began)
    except Exception as exc:  # counted, never stops the soak
        return Outcome(prompt, error_name(exc), time.perf_counter() - began)
    latency = time.perf_counter() - began
    images = list(reply.result.images)
    ok = len(images) == 1 and read_identity(images[0].data) == identity(prompt, 0)
    return Outcome(prompt, "OK", latency, ok)


@contextlib.asynccontextmanager
async def _target(ctx: Context) -> AsyncIterator[tuple[str, str, int | None]]:
    """(gRPC target, emulator origin, local gateway pid or None)."""
    options = ctx.soak
    if options.target is not None and options.emulator is not None:
        yield options.target, _emulator_origin(options.emulator), options.gateway_pid
        return
    async with running_stack(StackConfig(), ctx.workdir / NAME) as stack:
        yield stack.gateway_target, _emulator_origin(stack.emulator_url), stack.gateway_pid


def schedule(batches: int) -> list[FaultKind | None]:
    """Per batch: None (clean) every other batch, else the next fault kind in turn."""
    return [None if i % 2 == 0 else KINDS[(i // 2) % len(KINDS)] for i in range(batches)]


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    options = ctx.soak
    calls = options.calls or (TINY_CALLS if ctx.tiny else DEFAULT_CALLS)
    concurrency = options.concurrency or (TINY_CONCURRENCY if ctx.tiny else DEFAULT_CONCURRENCY)
    concurrency = min(concurrency, calls)
    # Faulted upstream requests per fault batch: at most 2, so a call whose every
    # attempt falls among them still has a third (the default IMAGEGATE_MAX_RETRIES=2).
    faulted = 1 if concurrency < 8 else 2
    time_limit_s = 60.0 if ctx.tiny else max(600.0, calls / 10)
    tag = os.urandom(4).hex()
    metadata: tuple[tuple[str, str], ...] = ()
    if options.token:
        metadata = (("authorization", f"Bearer {options.token}"),)
    outcomes: list[Outcome] = []
    rss: list[int] = []
    load = LoadResult()
    async with (
        _target(ctx) as (target, origin, pid),
        httpx.AsyncClient(base_url=origin, timeout=30) as control,
    ):
        pool = GrpcPool(target, min(4, concurrency))
        batches = -(-calls // concurrency)
        plan = schedule(batches)
        cpu_before = tree_cpu_seconds(pid) if pid else 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await pool.ready()
            for index, kind in enumerate(plan):
                if loop.time() - started > time_limit_s:
                    result.notes.append(f"stopped at the time limit ({time_limit_s:g} s)")
                    break
                text = ""
                if kind is not None:
                    text = f"{kind.text};first={faulted};key=soak-{tag}-{index}"
                await _set_faults(control, text)
                first = index * concurrency
                size = min(concurrency, calls - first)
                prompts = [f"soak {tag} {first + i}" for i in range(size)]
                outcomes += await asyncio.gather(*(_call(pool, p, metadata) for p in prompts))
                if pid and (index == 0 or index == len(plan) - 1):
                    rss.append(tree_rss_bytes(pid))
        finally:
            load.elapsed_s = loop.time() - started
            cpu_s = tree_cpu_seconds(pid) - cpu_before if pid else None
            with contextlib.suppress(httpx.HTTPError):
                await _set_faults(control, "")
            await pool.close()
        journal = (await control.get("/_emulator/requests")).json()
    tally = judge(outcomes, attempts_by_prompt(journal, tag))
    for outcome in outcomes:
        if outcome.code == "OK":
            load.latencies_s.append(outcome.latency_s)
        else:
            load.errors[f"grpc {outcome.code}"] += 1
    row = Row.of(NAME, f"{len(outcomes)} calls", "gateway", concurrency, load, cpu_s=cpu_s)
    row.generator = PYTHON_GRPC
    row.expected_errors = True
    row.extra.update(
        faults_injected=sum(tally.faults.values()),
        retried_ok=tally.retried_ok,
        mapped_ok=tally.mapped_ok,
        wrong_image=tally.wrong_image,
    )
    if len(rss) == 2:
        row.extra.update(
            rss_start_mib=rss[0] / MIB,
            rss_end_mib=rss[1] / MIB,
            rss_drift_mib=(rss[1] - rss[0]) / MIB,
        )
        row.gateway_peak_rss_mib = max(rss) / MIB
    result.rows.append(row)
    result.checks += _checks(tally, len(outcomes), calls)
    drift = (
        f"gateway RSS {rss[0] / MIB:.1f} MiB after the first batch, {rss[1] / MIB:.1f} MiB "
        f"after the last ({(rss[1] - rss[0]) / MIB:+.1f} MiB)"
        if len(rss) == 2
        else "gateway RSS not measured (a remote target: pass --gateway-pid for a local one)"
    )
    injected = ", ".join(f"{k} x{n}" for k, n in sorted(tally.faults.items())) or "none"
    result.notes.append(
        f"target {target}; {len(outcomes)} calls in batches of {concurrency}, every other "
        f"batch with its first {faulted} upstream request(s) faulted; faults injected "
        f"(from the emulator's journal): {injected}; {drift}; driven by the Python gRPC "
        "client, which checks every image's identity"
        + (f"; unexplained: {'; '.join(tally.unexplained[:5])}" if tally.unexplained else "")
    )
    return result


async def _set_faults(control: httpx.AsyncClient, text: str) -> None:
    response = await control.post("/_emulator/faults", json={"faults": text})
    response.raise_for_status()


def _checks(tally: Tally, answered: int, calls: int) -> list[Check]:
    def must(target: str, measured: float, note: str = "") -> Check:
        return Check(NAME, target, measured, 0, False, "", note, must_hold=True)

    return [
        must("images that reached the wrong caller (or none readable)", tally.wrong_image),
        must(
            "retried faults that did not end in success",
            tally.retried_failed,
            f"{tally.retried_ok} retried and succeeded",
        ),
        must(
            "non-retryable faults answered with another code",
            tally.mapped_wrong,
            f"{tally.mapped_ok} answered with their documented code",
        ),
        must("calls without a fault that did not succeed in one attempt", tally.clean_failed),
        Check(NAME, "calls made", answered, calls, True, "", must_hold=True),
    ]
