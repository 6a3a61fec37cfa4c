"""What a scenario reports: measured rows, targets checked, notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imagegate_server.bench.measure import LoadResult

if TYPE_CHECKING:
    # Only for the annotation: loadgen imports the gRPC and HTTP clients.
    from imagegate_server.bench.loadgen import Generators

MIB = 1024 * 1024


@dataclass
class Row:
    scenario: str
    case: str
    path: str
    """``gateway`` or ``direct``; in the tenancy scenario ``tenancy`` (the gateway with
    authentication and the Redis limiter), whose baseline is the plain ``gateway``."""
    concurrency: int
    calls: int
    errors: int
    p50_ms: float
    p99_ms: float
    throughput: float
    """Successful calls per second."""
    gateway_peak_rss_mib: float | None = None
    gateway_cpu_ms_per_call: float | None = None
    """The gateway's CPU time (user + system, every thread; with workers the supervisor
    and every worker) during the phase, over its calls; None on direct rows."""
    generator: str = ""
    """What drove the phase: ``ghz v...``, ``hey v...`` or a Python client."""
    extra: dict[str, float] = field(default_factory=dict)
    """Scenario-specific measures, e.g. ``ttfb_p50_ms`` or ``mib_per_s``."""
    error_kinds: dict[str, int] = field(default_factory=dict)
    expected_errors: bool = False
    """The errors were injected on purpose (soak): its checks judge them, and they do
    not fail the run by themselves."""

    @classmethod
    def of(
        cls,
        scenario: str,
        case: str,
        path: str,
        concurrency: int,
        load: LoadResult,
        peak_rss: int | None = None,
        *,
        cpu_s: float | None = None,
        generator: str = "",
    ) -> Row:
        """``cpu_s``: the gateway's CPU seconds over the phase (per call in the row)."""
        calls = load.ok + load.error_count
        return cls(
            scenario=scenario,
            case=case,
            path=path,
            concurrency=concurrency,
            calls=calls,
            errors=load.error_count,
            p50_ms=load.percentile_s(50) * 1000,
            p99_ms=load.percentile_s(99) * 1000,
            throughput=load.throughput,
            gateway_peak_rss_mib=None if peak_rss is None else peak_rss / MIB,
            gateway_cpu_ms_per_call=None if cpu_s is None else cpu_s * 1000 / max(calls, 1),
            generator=generator,
            error_kinds=dict(load.errors),
        )


@dataclass
class Check:
    """One target of the issue: measured against its threshold."""

    scenario: str
    target: str
    measured: float
    threshold: float
    higher_is_better: bool
    unit: str = ""
    note: str = ""
    must_hold: bool = False
    """A correctness check (soak: every image reached its caller), not a speed target:
    missing it fails the run. Speed targets are only reported."""

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.threshold
        return self.measured <= self.threshold


@dataclass
class ScenarioResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SoakOptions:
    """``imagegate bench soak`` options (the other scenarios ignore them)."""

    calls: int | None = None
    """None: the scenario's default (2,000; tiny 48)."""
    concurrency: int | None = None
    target: str | None = None
    """A running gateway (host:port) whose upstream is ``emulator``; None: own stack."""
    emulator: str | None = None
    token: str | None = None
    gateway_pid: int | None = None
    """The target's (local) pid, for its RSS drift; unknown for a remote target."""


@dataclass(frozen=True)
class Context:
    tiny: bool
    workdir: Path
    """Scratch space: process logs, generated upload images."""
    generators: Generators
    """ghz and hey when installed, else the Python clients."""
    soak: SoakOptions = field(default_factory=SoakOptions)


class BenchUnavailable(Exception):
    """A scenario cannot run on this machine (a tool it needs is missing); the
    message says what to install. Raised before any scenario starts."""
