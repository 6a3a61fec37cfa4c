"""``imagegate bench all --tiny`` runs end to end: real processes on loopback.

Benchmarks are not timed tests: this only shows that every scenario runs, writes its
report and that no call failed. It asserts nothing about latency or throughput.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imagegate_server.bench import command, runner


def test_the_command_names_every_scenario_of_the_runner() -> None:
    assert tuple(runner.SCENARIOS) == command.SCENARIOS


def test_every_scenario_runs_tiny_and_reports_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "imagegate_server.cli", "bench", "all", "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    for name in ("results.md", "results.json", "chart.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "chart.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    report = json.loads((out / "results.json").read_text())
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == set(command.SCENARIOS)
    for name, scenario in scenarios.items():
        rows = scenario["rows"]
        assert {row["path"] for row in rows} == {"gateway", "direct"}, name
        assert all(row["calls"] > 0 and row["errors"] == 0 for row in rows), (name, rows)
    assert "overhead" in (out / "results.md").read_text()
