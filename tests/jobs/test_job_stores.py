"""What both job stores promise (the local database, Redis, a Redis Cluster): one job
per request id, bounded queues, turns across clients, exactly-once endings, leases
that lapse, events."""

from __future__ import annotations

import asyncio

import pytest

from imagegate_server.jobs.model import JobKind, JobRecord, JobState, new_job_id, now_ms
from imagegate_server.jobs.store import ClientJobs, Created, JobStore, QueueFull

REQUEST_ID = "0b0f3c8e-5a4d-4c7e-9a57-2f2d3c4b5a69"


def job(client: str, request_id: str | None = None, kind: JobKind = JobKind.JOB) -> JobRecord:
    now = now_ms()
    state = JobState.QUEUED if kind is JobKind.JOB else JobState.RUNNING
    return JobRecord(
        new_job_id(), client, kind, "generation", state, now, now, now + 3_600_000,
        model="gpt-image-2", request_id=request_id, request=b'{"p": ""}',
        owner="" if kind is JobKind.JOB else "runner-a",
    )  # fmt: skip


async def test_a_request_id_makes_one_job(store: JobStore) -> None:
    first = await store.create(job("a", REQUEST_ID), 10)
    second = await store.create(job("a", REQUEST_ID), 10)
    other_client = await store.create(job("b", REQUEST_ID), 10)
    assert isinstance(first, Created) and isinstance(second, Created)
    assert first.created and not second.created
    assert second.record.id == first.record.id
    assert isinstance(other_client, Created) and other_client.created


async def test_a_full_queue_refuses(store: JobStore) -> None:
    for _ in range(2):
        assert isinstance(await store.create(job("a"), 2), Created)
    assert await store.create(job("a"), 2) == QueueFull(2)
    assert isinstance(await store.create(job("b"), 2), Created)


async def test_clients_take_turns(store: JobStore) -> None:
    for _ in range(5):
        await store.create(job("busy"), 10)
    await store.create(job("quiet"), 10)
    order = []
    for _ in range(4):
        claimed = await store.claim("runner-a", 30_000, 1.0)
        assert claimed is not None
        order.append(claimed.client)
    assert order[:2] == ["busy", "quiet"] and order[2:] == ["busy", "busy"]


async def test_a_free_runner_takes_a_new_job_at_once_only_when_nobody_waits(
    store: JobStore,
) -> None:
    """Claimed at its submit: leased to the runner, in no queue, and it passes no one."""
    first = await store.create(job("a"), 10, 30_000, claim_for="runner-a")
    assert isinstance(first, Created) and first.claimed and first.record.owner == "runner-a"
    assert await store.claim("runner-b", 30_000, 0.1) is None  # in no queue
    assert await store.mark_sent(first.record, now_ms()) is not None  # its lease is its runner's
    assert (await store.client_jobs("a")) == ClientJobs(queued=0, running=1, oldest_queued_ms=None)

    waiting = await store.create(job("b"), 10)  # no free runner claimed it: it queues
    assert isinstance(waiting, Created) and not waiting.claimed
    later = await store.create(job("c"), 10, 30_000, claim_for="runner-a")
    assert isinstance(later, Created) and not later.claimed  # b waits: c queues behind it
    order = [await store.claim("runner-b", 30_000, 1.0) for _ in range(2)]
    assert [claimed.client for claimed in order if claimed] == ["b", "c"]


async def test_a_job_claimed_at_submit_runs_elsewhere_when_its_runner_dies(
    store: JobStore,
) -> None:
    created = await store.create(job("a"), 10, 1, claim_for="dead-runner")
    assert isinstance(created, Created) and created.claimed
    await asyncio.sleep(0.05)
    lapsed = await store.reap(now_ms(), now_ms() + 60_000, b"aborted", 10)
    assert [(item.record.id, item.requeued) for item in lapsed] == [(created.record.id, True)]
    again = await store.claim("live-runner", 30_000, 1.0)
    assert again is not None and again.id == created.record.id


async def test_a_released_job_waits_for_its_clients_turn(store: JobStore) -> None:
    await store.create(job("a"), 10)
    claimed = await store.claim("runner-a", 30_000, 1.0)
    assert claimed is not None
    await store.release(claimed, now_ms() + 600)
    assert await store.claim("runner-a", 30_000, 0.1) is None
    again = await store.claim("runner-a", 30_000, 3.0)
    assert again is not None and again.id == claimed.id


async def test_a_job_ends_once(store: JobStore) -> None:
    await store.create(job("a"), 10)
    claimed = await store.claim("runner-a", 30_000, 1.0)
    assert claimed is not None
    sent = await store.mark_sent(claimed, now_ms())
    assert sent is not None and sent.state is JobState.RUNNING and sent.sent
    expires = now_ms() + 60_000
    ended = await store.finish(claimed, JobState.SUCCEEDED, b"{}", 123, expires)
    assert ended is not None and ended.cost_micros == 123
    assert await store.finish(claimed, JobState.FAILED, b"{}", 0, expires) is None
    got = await store.get("a", claimed.id)
    assert got is not None and got.state is JobState.SUCCEEDED
    assert await store.get("b", claimed.id) is None


async def test_cancel_ends_a_queued_job_at_once_and_asks_a_runner(store: JobStore) -> None:
    """Queued, or claimed by a runner that waits for its client's limits: ended at once
    (its runner then never sends it, nor puts it back); sent: its runner is asked."""
    queued = await store.create(job("a"), 10)
    held = await store.create(job("a"), 10)
    running = await store.create(job("a"), 10)
    assert isinstance(queued, Created) and isinstance(held, Created)
    assert isinstance(running, Created)
    claimed = await store.claim("runner-a", 30_000, 1.0)
    assert claimed is not None and claimed.id == queued.record.id
    expires = now_ms() + 60_000
    answer = await store.request_cancel("a", held.record.id, b"x", now_ms(), expires)
    assert answer is not None and answer[1] and answer[0].state is JobState.CANCELLED
    ended = await store.request_cancel("a", claimed.id, b"x", now_ms(), expires)
    assert ended is not None and ended[1] and ended[0].state is JobState.CANCELLED
    assert await store.mark_sent(claimed, now_ms()) is None  # never sent after a cancel
    await store.release(claimed, now_ms())  # its runner's admission was refused meanwhile
    got = await store.get("a", claimed.id)
    assert got is not None and got.state is JobState.CANCELLED
    sending = await store.claim("runner-a", 30_000, 1.0)
    assert sending is not None and sending.id == running.record.id  # not the cancelled one
    assert await store.mark_sent(sending, now_ms()) is not None
    asked = await store.request_cancel("a", sending.id, b"x", now_ms(), expires)
    assert asked is not None and not asked[1] and asked[0].cancel_requested
    assert asked[0].state is JobState.RUNNING  # its runner ends it, closing its upstream
    assert await store.request_cancel("b", claimed.id, b"x", now_ms(), expires) is None
    assert (await store.client_jobs("a")).queued == 0


async def test_lapsed_leases_requeue_unsent_jobs_and_fail_sent_ones(store: JobStore) -> None:
    for _ in range(2):
        await store.create(job("a"), 10)
    unsent = await store.claim("dead-runner", 1, 1.0)
    sent = await store.claim("dead-runner", 1, 1.0)
    assert unsent is not None and sent is not None
    assert await store.mark_sent(sent, now_ms()) is not None
    await asyncio.sleep(0.05)
    lapsed = await store.reap(now_ms(), now_ms() + 60_000, b"aborted", 10)
    by_id = {item.record.id: item for item in lapsed}
    assert by_id[unsent.id].requeued
    assert not by_id[sent.id].requeued and by_id[sent.id].record.state is JobState.FAILED
    again = await store.claim("live-runner", 30_000, 1.0)
    assert again is not None and again.id == unsent.id


async def test_the_end_of_a_watched_job_reaches_a_reader(store: JobStore) -> None:
    events = store.events()
    reader = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.3)  # the reader has started reading
    await store.create(job("a"), 10)
    claimed = await store.claim("runner-a", 30_000, 1.0)
    assert claimed is not None
    assert await store.watch("b", claimed.id, 10_000) is None  # not b's job
    watched = await store.watch("a", claimed.id, 10_000)
    assert watched is not None and watched.id == claimed.id
    await store.finish(claimed, JobState.SUCCEEDED, b"{}", 0, now_ms() + 60_000)
    event = await asyncio.wait_for(reader, 5.0)
    assert (event.kind, event.job_id) == ("done", claimed.id)
    await events.aclose()


async def test_on_redis_an_end_nobody_watches_is_sent_to_no_replica(store: JobStore) -> None:
    """Every replica reads every event: the end of a job no waiter watches is not one
    (the local database tells its few worker processes of every end)."""
    if store.backend != "redis":
        pytest.skip("Redis only")
    events = store.events()
    reader = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.3)  # the reader has started reading
    await store.create(job("a"), 10)
    claimed = await store.claim("runner-a", 30_000, 1.0)
    assert claimed is not None
    await store.finish(claimed, JobState.SUCCEEDED, b"{}", 0, now_ms() + 60_000)
    done, _ = await asyncio.wait([reader], timeout=1.0)
    assert not done, "an unwatched end went out as an event"
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await events.aclose()


async def test_finished_jobs_are_forgotten_after_retention(store: JobStore) -> None:
    await store.create(job("a"), 10)
    claimed = await store.claim("runner-a", 30_000, 1.0)
    assert claimed is not None
    await store.finish(claimed, JobState.SUCCEEDED, b"{}", 0, now_ms() + 200)
    assert await store.expired(now_ms(), 10) == []
    await asyncio.sleep(0.3)
    assert [r.id for r in await store.expired(now_ms(), 10)] == [claimed.id]
    assert await store.get("a", claimed.id) is None
