"""``imagegate bench all --tiny`` runs end to end: real processes on loopback.

Benchmarks are not timed tests: this only shows that every scenario runs, writes its
report and that no call failed. It asserts nothing about latency or throughput.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from imagegate_server.bench import command, runner

# What each scenario compares: the gateway against direct calls, except tenancy, which
# compares the gateway with authentication and the Redis limiter against without.
PATHS = {"tenancy": {"gateway", "tenancy"}}


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
        assert {row["path"] for row in rows} == PATHS.get(name, {"gateway", "direct"}), name
        assert all(row["calls"] > 0 and row["errors"] == 0 for row in rows), (name, rows)
    assert "overhead" in (out / "results.md").read_text()
    # Tenancy: every row has the gateway's CPU per call, every check is a ratio of both.
    tenancy = scenarios["tenancy"]
    assert all(row["extra"]["gateway_cpu_ms_per_call"] > 0 for row in tenancy["rows"])
    targets = [check["target"] for check in tenancy["checks"]]
    assert any("CPU per call" in target for target in targets)
    assert any("p50 latency" in target and "concurrency 1" in target for target in targets)

    # The cost of metrics and traces: each case against plain, and spans really exported.
    observability = {row["case"]: row for row in scenarios["observability"]["rows"]}
    assert {"plain", "metrics", "metrics+traces"} <= set(observability)
    for case in ("metrics", "metrics+traces"):
        assert {"cpu_ratio", "p50_ratio"} <= set(observability[case]["extra"]), case
    (note,) = scenarios["observability"]["notes"]
    exported = int(note.split(" spans reached the OTLP receiver")[0].rsplit(" ", 1)[1])
    assert exported >= 2 * observability["metrics+traces"]["calls"]


def test_the_tenancy_scenario_says_what_to_install_without_redis_server(tmp_path: Path) -> None:
    empty = tmp_path / "bin"  # a PATH on which no redis-server can be found
    empty.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "imagegate_server.cli", "bench", "tenancy", "--tiny",
         "--out", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": str(empty)},
    )  # fmt: skip
    assert completed.returncode == 1
    (line,) = completed.stderr.splitlines()
    assert line.startswith("imagegate bench: ") and "redis-server" in line
    assert "apt-get install" in line
    assert not (tmp_path / "report").exists()  # refused before anything ran
