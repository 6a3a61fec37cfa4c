"""Several processes, one /metrics: what the supervisor sums from its directory.

Real processes record through :class:`Metrics` with ``PROMETHEUS_MULTIPROC_DIR``
set from their start, as the supervisor starts its workers; the test collects the
directory the way the supervisor does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from support.serve import clean_env

from imagegate_server.metrics import multiprocess
from imagegate_server.models import MODEL_RULES

KNOWN_MODEL = next(iter(MODEL_RULES))

# A stand-in worker: records, holds one call in flight, says so, waits for stdin.
CHILD = textwrap.dedent(
    """
    import sys
    from imagegate_server.metrics import Metrics

    metrics = Metrics()
    images = int(sys.argv[1])
    metrics.images(sys.argv[2], "generation", images)
    metrics.set_upstream_up("default", sys.argv[3] == "up")
    with metrics.in_flight(None):
        print("ready", flush=True)
        sys.stdin.read()
    """
)


def _child(directory: Path, images: int, up: bool) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(images), KNOWN_MODEL, "up" if up else "down"],
        env=clean_env(**{multiprocess.ENV: str(directory)}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


def _collect(directory: Path) -> dict[str, float]:
    registry = multiprocess.collector_registry(directory)
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_counters_sum_and_gauges_combine_over_processes(tmp_path: Path) -> None:
    multiprocess.prepare(tmp_path)
    first = _child(tmp_path, 2, up=False)
    second = _child(tmp_path, 3, up=True)  # the most recent observation: up
    images = "imagegate_images_total" + str(
        sorted({"model": KNOWN_MODEL, "operation": "generation"}.items())
    )
    inflight = "imagegate_inflight_calls" + str([("client", "anonymous")])
    try:
        seen = _collect(tmp_path)
        assert seen[images] == 5
        assert seen[inflight] == 2
        assert seen["imagegate_upstream_up" + str([("upstream", "default")])] == 1
        assert seen["imagegate_server_starts_total[]"] == 0

        # A worker dies (its call with it): its count stays, its live gauges go.
        first.kill()
        first.wait(10)
        multiprocess.process_died(tmp_path, first.pid)
        seen = _collect(tmp_path)
        assert seen[images] == 5
        assert seen[inflight] == 1
    finally:
        for child in (first, second):
            if child.poll() is None:
                assert child.stdin is not None
                child.stdin.close()
                child.wait(10)
    seen = _collect(tmp_path)
    assert seen[inflight] == 0  # the second one finished its call before exiting


def test_prepare_removes_a_previous_runs_values(tmp_path: Path) -> None:
    multiprocess.prepare(tmp_path)
    old = _child(tmp_path, 7, up=True)
    assert old.stdin is not None
    old.stdin.close()
    old.wait(10)
    assert any(tmp_path.glob("*.db"))
    (tmp_path / "keep.txt").write_text("not ours")
    multiprocess.prepare(tmp_path)
    assert not any(tmp_path.glob("*.db"))
    assert (tmp_path / "keep.txt").exists()
    assert not any(name.startswith("imagegate_images_total") for name in _collect(tmp_path))
