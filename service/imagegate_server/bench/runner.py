"""Runs the chosen scenarios one after another and writes the report files."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from imagegate_server.bench import chart, report
from imagegate_server.bench.child import raise_fd_limit
from imagegate_server.bench.loadgen import Generators
from imagegate_server.bench.model import Context, ScenarioResult, SoakOptions
from imagegate_server.bench.scenarios import (
    capacity,
    jobs,
    observability,
    overhead,
    results,
    routing,
    scaling,
    soak,
    tenancy,
    uploads,
)

Scenario = Callable[[Context], Awaitable[ScenarioResult]]
SCENARIOS: dict[str, Scenario] = {
    overhead.NAME: overhead.run,
    scaling.NAME: scaling.run,
    capacity.NAME: capacity.run,
    uploads.NAME: uploads.run,
    results.NAME: results.run,
    tenancy.NAME: tenancy.run,
    observability.NAME: observability.run,
    routing.NAME: routing.run,
    soak.NAME: soak.run,
    jobs.NAME: jobs.run,
}
# What a scenario needs from the machine, checked before any scenario starts (raises
# BenchUnavailable saying what to install).
PREFLIGHTS: dict[str, Callable[[], None]] = {
    tenancy.NAME: tenancy.preflight,
    jobs.NAME: jobs.preflight,
}


async def run_all(names: list[str], context: Context) -> list[ScenarioResult]:
    done = []
    for name in names:
        tiny = " (tiny)" if context.tiny else ""
        print(f"imagegate bench: running {name}{tiny} ...", flush=True)
        done.append(await SCENARIOS[name](context))
    return done


def run(
    names: list[str],
    tiny: bool,
    out: Path,
    tools_dir: str | None = None,
    use_native: bool = True,
    soak: SoakOptions | None = None,
) -> list[ScenarioResult]:
    """Run, print the table, write results.md, results.json and chart.png into ``out``.

    Raises :class:`BenchUnavailable` before running anything when a chosen scenario
    cannot run on this machine.
    """
    for name in names:
        PREFLIGHTS.get(name, _nothing)()
    # This process holds the client side of every connection (10,000 at capacity).
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-") as scratch:
        workdir = Path(scratch)
        generators = Generators.prepare(tools_dir, use_native, workdir / "generators")
        print(f"imagegate bench: {generators.note()}", flush=True)
        context = Context(tiny, workdir, generators, soak or SoakOptions())
        done = asyncio.run(run_all(names, context))
    info = report.machine()
    out.mkdir(parents=True, exist_ok=True)
    print(report.text_table(done))
    print(f"\n{generators.note()}")
    used = generators.note()
    (out / "results.md").write_text(report.markdown(done, info, tiny, used))
    (out / "results.json").write_text(report.to_json(done, info, tiny, used) + "\n")
    title = f"imagegate bench: gateway vs direct, {info['cores']} cores, {info['date']}"
    chart.draw_chart(done, out / "chart.png", title)
    print(f"imagegate bench: wrote {out}/results.md, results.json, chart.png")
    return done


def _nothing() -> None:
    return None
