"""What an operator reads while the limits store fails: one line when an outage starts
(naming why), one when it ends (saying how long, and what else was seen), and no
more when the store fails and recovers by turns for the same reason (a Cluster node
down while the others answer)."""

from __future__ import annotations

import logging

import pytest

from imagegate_server.limits.outage import RELAPSE_QUIET_S, OutagePolicy, StoreHealth
from imagegate_server.redis_connection import StoreFailure

LOGGER = "imagegate_server.limits.outage"
REFUSED = StoreFailure("unreachable", "REFUSED", "connection refused")
DOWN = StoreFailure("refusing", "CLUSTERDOWN", "the Redis Cluster is down (CLUSTERDOWN)")
WRONGPASS = StoreFailure("refusing", "WRONGPASS", "Redis refused the username or password")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> StoreHealth:
    return StoreHealth("redis", "redis+cluster://n1:7000", OutagePolicy(), 1.0, clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def probe_back(health: StoreHealth, clock: Clock) -> None:
    clock.now += health.probe_interval_s
    assert not health.skip()  # this call probes
    health.up(started_up=False)


def test_one_outage_two_lines_whatever_happens_in_between(
    health: StoreHealth, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    health.down(REFUSED)  # the primary died
    assert health.state == "unreachable" and health.skip()
    for _ in range(5):  # the cluster notices: every node answers CLUSTERDOWN
        clock.now += 1
        health.down(DOWN)
        health.down(REFUSED)
    assert health.state == "unreachable"
    health.down(DOWN)
    assert health.state == "refusing" and health.reason == DOWN.reason
    probe_back(health, clock)
    assert health.state == "up" and health.reason is None
    assert lines(caplog) == [
        "limits store unreachable (connection refused from redis+cluster://n1:7000); until it "
        "answers: rates fail open, concurrency fails open, budgets fail closed",
        "limits store working again (redis+cluster://n1:7000, after 6.0 s; also seen: "
        "the Redis Cluster is down (CLUSTERDOWN))",
    ]
    assert health.outages == 1


def test_failing_again_for_the_same_reason_soon_after_is_the_same_outage(
    health: StoreHealth, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(10):  # calls of a node that is down fail, others pass, by turns
        health.down(REFUSED)
        probe_back(health, clock)
        clock.now += 1
    assert len(lines(caplog)) == 2
    health.down(WRONGPASS)  # something else: said at once
    assert len(lines(caplog)) == 3
    assert lines(caplog)[2].startswith("limits store refusing commands (redis+cluster://n1:7000): ")
    probe_back(health, clock)
    clock.now += RELAPSE_QUIET_S + 1
    health.down(WRONGPASS)  # long after: a new outage, said again
    assert len(lines(caplog)) == 5
    assert health.outages == 12
