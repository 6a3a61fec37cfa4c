"""``imagegate bench SCENARIO|all [--tiny] [--out DIR] [--tools DIR] [--python-clients]``,
and the soak's own options (``--calls``, ``--concurrency``, ``--target``, ...)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# Spelled out (and checked against the runner's table by the tiny test) so that
# ``imagegate --help`` does not import grpc clients and Pillow.
SCENARIOS = (
    "overhead",
    "scaling",
    "capacity",
    "uploads",
    "results",
    "tenancy",
    "observability",
    "routing",
    "soak",
    "jobs",
)
MAX_SOAK_CALLS = 1_000_000
MAX_SOAK_CONCURRENCY = 1024


def _bounded(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low} to {high}")
        return int(text)

    return parse


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the gateway against direct calls to the emulator",
        description="Start the emulator and the gateway on loopback, run the scenario "
        "against both, print a table and write results.md, results.json and chart.png. "
        "Load comes from ghz (gRPC) and hey (HTTP) when they are installed, else from "
        "Python clients, which the report then says.",
    )
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="what to run")
    parser.add_argument(
        "--tiny", action="store_true", help="smallest sizes: shows it works, measures nothing"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="report directory")
    parser.add_argument(
        "--tools",
        default=os.environ.get("IMAGEGATE_BENCH_TOOLS") or None,
        metavar="DIR",
        help="where ghz and hey are (default $IMAGEGATE_BENCH_TOOLS; then PATH, $GOBIN, "
        "~/go/bin); .ci/bench-tools.sh DIR installs them",
    )
    parser.add_argument(
        "--python-clients",
        action="store_true",
        help="drive every path with the Python clients even if ghz and hey are installed",
    )
    soak = parser.add_argument_group("soak (only with the soak scenario)")
    soak.add_argument(
        "--calls", type=_bounded(1, MAX_SOAK_CALLS), help="calls in all (default 2000)"
    )
    soak.add_argument(
        "--concurrency",
        type=_bounded(1, MAX_SOAK_CONCURRENCY),
        help="calls in flight (default 16)",
    )
    soak.add_argument(
        "--target", metavar="HOST:PORT", help="a running gateway instead of an own stack"
    )
    soak.add_argument(
        "--emulator", metavar="URL", help="the target's upstream emulator (with --target)"
    )
    soak.add_argument("--token", help="bearer token for the target (default $IMAGEGATE_TOKEN)")
    soak.add_argument(
        "--gateway-pid",
        type=_bounded(1, 2**22),
        help="the target's local pid, to report its RSS drift",
    )
    parser.set_defaults(handler=run)


def _soak_options_error(args: argparse.Namespace) -> str | None:
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("calls", "concurrency", "target", "emulator", "token", "gateway_pid")
        if getattr(args, name) is not None
    ]
    if given and args.scenario not in ("soak", "all"):
        return f"{', '.join(given)} only apply to the soak scenario"
    if (args.target is None) != (args.emulator is None):
        return "--target and --emulator go together (the soak sets the emulator's faults)"
    if args.target is not None and args.scenario != "soak":
        return "--target runs the soak scenario only: use `imagegate bench soak --target ...`"
    return None


def run(args: argparse.Namespace) -> int:
    error = _soak_options_error(args)
    if error:
        print(f"imagegate bench: {error}", file=sys.stderr)
        return 2
    from imagegate_server.bench import runner  # the scenarios import grpc and Pillow
    from imagegate_server.bench.model import BenchUnavailable, SoakOptions

    soak = SoakOptions(
        calls=args.calls,
        concurrency=args.concurrency,
        target=args.target,
        emulator=args.emulator,
        token=args.token or os.environ.get("IMAGEGATE_TOKEN") or None,
        gateway_pid=args.gateway_pid,
    )
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        done = runner.run(
            names,
            args.tiny,
            args.out,
            tools_dir=args.tools,
            use_native=not args.python_clients,
            soak=soak,
        )
    except BenchUnavailable as exc:
        print(f"imagegate bench: {exc}", file=sys.stderr)
        return 1
    # A scenario with failed calls is a failed run (the targets themselves are reported);
    # the soak's injected faults are expected failures and count in its own checks.
    failed = any(row.errors for result in done for row in result.rows if not row.expected_errors)
    broken = any(not check.met for result in done for check in result.checks if check.must_hold)
    return 1 if failed or broken else 0
