"""The results as a text table, markdown and JSON, with the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagegate_server.bench.model import Check, Row, ScenarioResult

HEADERS = ["scenario", "case", "path", "conc", "calls", "errors", "p50 ms", "p99 ms", "calls/s"]
HEADERS += ["gw CPU ms/call", "gw peak RSS MiB", "generator", "extra"]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _extra(row: Row) -> str:
    # Ratios and small per-call costs need their second decimal.
    return ", ".join(
        f"{k}={v:.2f}" if abs(v) < 10 else f"{k}={v:.1f}" for k, v in row.extra.items()
    )


def _cells(row: Row) -> list[str]:
    rss = "" if row.gateway_peak_rss_mib is None else f"{row.gateway_peak_rss_mib:.0f}"
    cpu = "" if row.gateway_cpu_ms_per_call is None else f"{row.gateway_cpu_ms_per_call:.3f}"
    # Sub-millisecond latencies (the native generators' c=1) need their second decimal.
    return [
        row.scenario,
        row.case,
        row.path,
        str(row.concurrency),
        str(row.calls),
        str(row.errors),
        _ms(row.p50_ms),
        _ms(row.p99_ms),
        f"{row.throughput:.1f}",
        cpu,
        rss,
        row.generator,
        _extra(row),
    ]


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _check_cells(check: Check) -> list[str]:
    relation = ">=" if check.higher_is_better else "<="
    return [
        check.scenario,
        check.target,
        f"{check.measured:.2f}{check.unit}",
        f"{relation} {check.threshold:g}{check.unit}",
        "met" if check.met else "MISSED",
        check.note,
    ]


CHECK_HEADERS = ["scenario", "target", "measured", "threshold", "result", "note"]


def text_table(results: list[ScenarioResult]) -> str:
    rows = [list(HEADERS)] + [_cells(r) for s in results for r in s.rows]
    checks = [CHECK_HEADERS] + [_check_cells(c) for s in results for c in s.checks]
    # The notes say which generator drove each scenario, and any fallback to Python.
    notes = [f"- {s.name}: {note}" for s in results for note in s.notes]
    return "\n\n".join([_align(rows), _align(checks), "\n".join(notes)]).rstrip()


def _align(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def markdown(
    results: list[ScenarioResult], info: dict[str, Any], tiny: bool, generators: str = ""
) -> str:
    parts = [
        "# imagegate bench results" + (" (tiny: a smoke run, not a measurement)" if tiny else ""),
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"{info['os']}, Python {info['python']}; {info['date']}. The load generator, "
        "the gateway and the emulator are three processes sharing these cores.",
        "",
        *([f"{generators[0].upper()}{generators[1:]}.", ""] if generators else []),
        "## Targets",
        "",
        _md_table([CHECK_HEADERS] + [_check_cells(c) for s in results for c in s.checks]),
        "",
        "## Measurements",
        "",
        _md_table([list(HEADERS)] + [_cells(r) for s in results for r in s.rows]),
        "",
        "![chart](chart.png)",
        "",
    ]
    notes = [f"- {s.name}: {note}" for s in results for note in s.notes]
    if notes:
        parts += ["## Notes", "", *notes, ""]
    return "\n".join(parts)


def to_json(
    results: list[ScenarioResult], info: dict[str, Any], tiny: bool, generators: str = ""
) -> str:
    scenarios = [
        {
            "name": s.name,
            "rows": [asdict(r) for r in s.rows],
            "checks": [dict(asdict(c), met=c.met) for c in s.checks],
            "notes": s.notes,
        }
        for s in results
    ]
    document = {"machine": info, "tiny": tiny, "generators": generators, "scenarios": scenarios}
    return json.dumps(document, indent=2)
