"""``imagegate bench SCENARIO|all [--tiny] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Spelled out (and checked against the runner's table by the tiny test) so that
# ``imagegate --help`` does not import grpc clients and Pillow.
SCENARIOS = ("overhead", "capacity", "uploads", "results", "tenancy", "observability")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the gateway against direct calls to the emulator",
        description="Start the emulator and the gateway on loopback, run the scenario "
        "against both, print a table and write results.md, results.json and chart.png.",
    )
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="what to run")
    parser.add_argument(
        "--tiny", action="store_true", help="smallest sizes: shows it works, measures nothing"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="report directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imagegate_server.bench import runner  # the scenarios import grpc and Pillow
    from imagegate_server.bench.model import BenchUnavailable

    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        done = runner.run(names, args.tiny, args.out)
    except BenchUnavailable as exc:
        print(f"imagegate bench: {exc}", file=sys.stderr)
        return 1
    # A scenario with failed calls is a failed run (the targets themselves are reported).
    return 1 if any(row.errors for result in done for row in result.rows) else 0
