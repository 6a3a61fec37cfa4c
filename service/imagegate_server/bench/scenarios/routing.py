"""8. routing: what routing over three upstreams costs, against one upstream, same run.

The overhead scenario's call (unary CreateImage, 256x256 dall-e-2, emulators that
answer at once with cached renders) through two gateway processes:

    one upstream     IMAGEGATE_OPENAI_API_KEY/_BASE_URL: the single upstream, as
                     every gateway without an upstreams file runs
    three upstreams  IMAGEGATE_UPSTREAMS_FILE naming three emulator processes (two
                     OpenAI-compatible, one Azure-shaped on its deployments route),
                     equal weights, one priority: every call is ordered, checked
                     against the breakers and booked to its upstream's spend
    three upstreams, one emulator
                     the same routing, its three upstreams all the first emulator:
                     the gateway does the same work, but its upstream answers exactly
                     as the one-upstream gateway's does (a gateway process spends
                     some CPU for as long as a call waits, so an upstream that
                     answers a little later costs it a little more per call)

Both use the default local limits store. The two take turns in rounds, at
concurrency 1 and 16, so that the machine's load falls on both alike. Reported:
the gateway's CPU time per call (user + system, all threads, from /proc) and p50
latency, and how the calls spread over the three emulators. The target (CPU per
call, three upstreams over one, <= 1.05x) is judged on the median of the rounds'
ratios: on shared cores a burst of other work in one phase moves a whole-run total
by several per cent, and the median of back-to-back pairs lets no one round decide.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from imagegate_server.bench.clients import GrpcPool
from imagegate_server.bench.loadgen import PYTHON_GRPC, PYTHON_HTTP
from imagegate_server.bench.measure import LoadResult, closed_loop
from imagegate_server.bench.model import Check, Context, Row, ScenarioResult
from imagegate_server.bench.procs import API_KEY, StackConfig, running_emulator, running_gateways
from imagegate_server.bench.scenarios.observability import direct_phase
from imagegate_server.bench.scenarios.overhead import gateway_call
from imagegate_server.bench.usage import cpu_seconds, rss_bytes

NAME = "routing"
CASES = ("one upstream", "three upstreams", "three upstreams, one emulator")
CONCURRENCY = (1, 16)
TARGET = 1.05
DEPLOYMENT = "images"


@dataclass
class _Case:
    name: str
    target: str
    pid: int
    pool: GrpcPool | None = None
    loads: dict[int, LoadResult] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    rounds: dict[int, list[float]] = field(default_factory=dict)
    """CPU ms per call of each round, by concurrency."""
    peak_rss: int = 0

    def cpu_ms_per_call(self, concurrency: int) -> float:
        load = self.loads.get(concurrency, LoadResult())
        return self.cpu_s.get(concurrency, 0.0) * 1000 / max(load.ok, 1)


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME)
    rounds, per_round = (1, 10) if ctx.tiny else (10, 200)
    time_limit = 10.0 if ctx.tiny else 120.0
    async with _stack(ctx.workdir / NAME) as (origins, cases):
        for case in cases:
            case.pool = GrpcPool(case.target, 4)
            await case.pool.ready()
            await closed_loop(gateway_call(case.pool), 4, 8 if ctx.tiny else 100, time_limit)
        counted = [_journal_size(origin) for origin in origins]
        for _ in range(rounds):
            for concurrency in CONCURRENCY:
                for case in cases:
                    await _measure(case, concurrency, per_round, time_limit)
        spread = [_journal_size(o) - before for o, before in zip(origins, counted, strict=True)]
        direct = await direct_phase(f"{origins[0]}/v1", rounds * per_round, time_limit)
        for case in cases:
            assert case.pool is not None
            await case.pool.close()
    one = cases[0]
    for case in cases:
        for concurrency in CONCURRENCY:
            load = case.loads[concurrency]
            row = Row.of(NAME, case.name, "gateway", concurrency, load, case.peak_rss)
            row.gateway_cpu_ms_per_call = case.cpu_ms_per_call(concurrency)
            row.generator = PYTHON_GRPC
            if case is not one:
                ratio = _median_ratio(case.rounds[concurrency], one.rounds[concurrency])
                row.extra["cpu_ratio"] = ratio
                result.checks.append(
                    Check(
                        NAME,
                        f"CPU per call, {case.name} / one, concurrency {concurrency}",
                        ratio,
                        TARGET,
                        higher_is_better=False,
                        unit="x",
                    )
                )
            result.rows.append(row)
    reference = Row.of(NAME, "emulator direct (reference)", "direct", 1, direct)
    reference.generator = PYTHON_HTTP
    result.rows.append(reference)
    result.notes.append(_summary(cases, spread))
    return result


@contextlib.asynccontextmanager
async def _stack(workdir: Path) -> AsyncIterator[tuple[list[str], list[_Case]]]:
    cached = StackConfig()
    azure = StackConfig(emulator_args=("--azure", "--azure-deployment", f"{DEPLOYMENT}=dall-e-2"))
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for index, config in enumerate((cached, cached, azure)):
            url, _pid = await stack.enter_async_context(
                running_emulator(config, workdir, f"emulator-{index}")
            )
            urls.append(url)
        envs = {
            "gateway-one": {},
            "gateway-three": {"IMAGEGATE_UPSTREAMS_FILE": str(_upstreams_file(workdir, urls))},
            "gateway-three-one-emulator": {
                "IMAGEGATE_UPSTREAMS_FILE": str(_upstreams_file(workdir, [urls[0]] * 3))
            },
        }
        gateways = await stack.enter_async_context(running_gateways(urls[0], envs, workdir))
        cases = [_Case(name, *gateways[key]) for name, key in zip(CASES, envs, strict=True)]
        origins = [url.removesuffix("/v1") for url in urls]
        yield origins, cases


def _upstreams_file(workdir: Path, urls: list[str]) -> Path:
    """Two compatible upstreams and an Azure one at ``urls`` (the same URL three times:
    three compatible upstreams)."""
    key = workdir / "emulator.key"
    key.write_text(API_KEY)
    first, second, third = urls
    entries = [
        f'[upstreams.first]\nkind = "compatible"\nbase_url = "{first}"\nkey_file = "{key}"\n',
        f'[upstreams.second]\nkind = "compatible"\nbase_url = "{second}"\nkey_file = "{key}"\n',
    ]
    if third == first:
        entries.append(
            f'[upstreams.third]\nkind = "compatible"\nbase_url = "{third}"\nkey_file = "{key}"\n'
        )
    else:
        entries.append(
            f'[upstreams.azure]\nkind = "azure"\nbase_url = "{third}"\nkey_file = "{key}"\n'
            f'api_version = "2025-04-01-preview"\n[upstreams.azure.deployments]\n'
            f'"dall-e-2" = "{DEPLOYMENT}"\n'
        )
    path = workdir / ("upstreams-one-emulator.toml" if third == first else "upstreams.toml")
    path.write_text("\n".join(entries))
    return path


async def _measure(case: _Case, concurrency: int, calls: int, time_limit: float) -> None:
    assert case.pool is not None
    before = cpu_seconds(case.pid)
    load = await closed_loop(gateway_call(case.pool), concurrency, calls, time_limit)
    spent = cpu_seconds(case.pid) - before
    case.cpu_s[concurrency] = case.cpu_s.get(concurrency, 0.0) + spent
    case.rounds.setdefault(concurrency, []).append(spent * 1000 / max(load.ok, 1))
    case.peak_rss = max(case.peak_rss, rss_bytes(case.pid))
    total = case.loads.setdefault(concurrency, LoadResult())
    total.latencies_s += load.latencies_s
    total.errors.update(load.errors)
    total.elapsed_s += load.elapsed_s


def _journal_size(origin: str) -> int:
    """How many requests the emulator at ``origin`` received so far."""
    url = f"{origin}/_emulator/requests"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
        return len(json.loads(response.read()))


def _median_ratio(three: list[float], one: list[float]) -> float:
    """The median over rounds of three upstreams' CPU per call over one's."""
    return statistics.median(t / max(o, 1e-9) for t, o in zip(three, one, strict=True))


def _summary(cases: list[_Case], spread: list[int]) -> str:
    one = cases[0]
    parts = []
    for case in cases[1:]:
        for concurrency in CONCURRENCY:
            mine, base = case.rounds[concurrency], one.rounds[concurrency]
            whole = case.cpu_ms_per_call(concurrency) / max(one.cpu_ms_per_call(concurrency), 1e-9)
            per_round = [f"{t / max(o, 1e-9):.2f}" for t, o in zip(mine, base, strict=True)]
            parts.append(
                f"{case.name} at concurrency {concurrency}: "
                f"{case.cpu_ms_per_call(concurrency):.3f} ms/call against "
                f"{one.cpu_ms_per_call(concurrency):.3f} (whole run {whole:.3f}x; rounds "
                f"{', '.join(per_round)}; median {_median_ratio(mine, base):.3f}x)"
            )
    return (
        "; ".join(parts)
        + f". The three emulators received {spread[0]}, {spread[1]} and {spread[2]} requests "
        "during the measured rounds (the first also serves the one-upstream gateway and the "
        "one-emulator case; equal weights spread the other's calls evenly). CPU is read "
        "from /proc in 10 ms ticks: --tiny measures nothing. Driven by the Python gRPC "
        "client whatever is installed: both cases pay it alike, and the figures are ratios."
    )
