"""prometheus-client's multiprocess mode, as the supervisor runs it.

Each worker process writes its values to ``<kind>_<pid>.db`` files in one
directory (prometheus-client does this by itself when ``PROMETHEUS_MULTIPROC_DIR``
is in the worker's environment from its start); the supervisor sums them for
``/metrics``. Rules from prometheus-client's multiprocess documentation: wipe the
directory before workers start, and tell it when a worker has died, so that
``live*`` gauges (calls in flight, reachability) drop that worker's values while
its counters keep counting in the sums.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from imagegate_server.errors import StartupError

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(directory: Path) -> None:
    """Create ``directory`` or remove the metric files a previous run left in it.

    Raises :class:`StartupError` when it cannot be used.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    except OSError:
        raise StartupError(
            f"{ENV}: cannot use {str(directory)[:200]!r} as the metrics directory"
        ) from None


def collector_registry(directory: Path) -> CollectorRegistry:
    """A registry whose collection sums every process's files in ``directory``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.fspath(directory))  # type: ignore[no-untyped-call]
    return registry


def process_died(directory: Path, pid: int) -> None:
    mark_process_dead(pid, os.fspath(directory))  # type: ignore[no-untyped-call]
