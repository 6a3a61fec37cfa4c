"""What a scenario reports: measured rows, targets checked, notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imagegate_server.bench.measure import LoadResult

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
    extra: dict[str, float] = field(default_factory=dict)
    """Scenario-specific measures, e.g. ``ttfb_p50_ms`` or ``mib_per_s``."""
    error_kinds: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        scenario: str,
        case: str,
        path: str,
        concurrency: int,
        load: LoadResult,
        peak_rss: int | None = None,
    ) -> Row:
        return cls(
            scenario=scenario,
            case=case,
            path=path,
            concurrency=concurrency,
            calls=load.ok + load.error_count,
            errors=load.error_count,
            p50_ms=load.percentile_s(50) * 1000,
            p99_ms=load.percentile_s(99) * 1000,
            throughput=load.throughput,
            gateway_peak_rss_mib=None if peak_rss is None else peak_rss / MIB,
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
class Context:
    tiny: bool
    workdir: Path
    """Scratch space: process logs, generated upload images."""


class BenchUnavailable(Exception):
    """A scenario cannot run on this machine (a tool it needs is missing); the
    message says what to install. Raised before any scenario starts."""
