"""Runs the chosen scenarios one after another and writes the report files."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from imagegate_server.bench import chart, report
from imagegate_server.bench.child import raise_fd_limit
from imagegate_server.bench.model import Context, ScenarioResult
from imagegate_server.bench.scenarios import (
    capacity,
    observability,
    overhead,
    results,
    tenancy,
    uploads,
)

Scenario = Callable[[Context], Awaitable[ScenarioResult]]
SCENARIOS: dict[str, Scenario] = {
    overhead.NAME: overhead.run,
    capacity.NAME: capacity.run,
    uploads.NAME: uploads.run,
    results.NAME: results.run,
    tenancy.NAME: tenancy.run,
    observability.NAME: observability.run,
}
# What a scenario needs from the machine, checked before any scenario starts (raises
# BenchUnavailable saying what to install).
PREFLIGHTS: dict[str, Callable[[], None]] = {tenancy.NAME: tenancy.preflight}


async def run_all(names: list[str], tiny: bool, workdir: Path) -> list[ScenarioResult]:
    done = []
    for name in names:
        print(f"imagegate bench: running {name}{' (tiny)' if tiny else ''} ...", flush=True)
        done.append(await SCENARIOS[name](Context(tiny=tiny, workdir=workdir)))
    return done


def run(names: list[str], tiny: bool, out: Path) -> list[ScenarioResult]:
    """Run, print the table, write results.md, results.json and chart.png into ``out``.

    Raises :class:`BenchUnavailable` before running anything when a chosen scenario
    cannot run on this machine.
    """
    for name in names:
        PREFLIGHTS.get(name, _nothing)()
    # This process holds the client side of every connection (10,000 at capacity).
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-") as scratch:
        done = asyncio.run(run_all(names, tiny, Path(scratch)))
    info = report.machine()
    out.mkdir(parents=True, exist_ok=True)
    print(report.text_table(done))
    (out / "results.md").write_text(report.markdown(done, info, tiny))
    (out / "results.json").write_text(report.to_json(done, info, tiny) + "\n")
    title = f"imagegate bench: gateway vs direct, {info['cores']} cores, {info['date']}"
    chart.draw_chart(done, out / "chart.png", title)
    print(f"imagegate bench: wrote {out}/results.md, results.json, chart.png")
    return done


def _nothing() -> None:
    return None
