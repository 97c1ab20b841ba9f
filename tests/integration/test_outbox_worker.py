"""The outbox worker on a real database: routing by topic, retries with backoff, dead letters,
a nudge after commit, and a clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapreport.errors import WeComUnavailable
from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.base import OutboxJob, OutboxMessage
from snapreport.outbox.sqlalchemy import OutboxNudge, SqlOutboxStore, enqueue
from snapreport.outbox.worker import (
    OutboxWorker,
    Routes,
    WorkerConfig,
    backoff_seconds,
    route_table,
)
from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import order_message


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqlOutboxStore]:
    # The worker's logic is the same on both backends; claims on each are in test_outbox_store.
    url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    repository = await SqlOrderRepository.connect(url, clock=clock)
    try:
        yield SqlOutboxStore(repository.engine, clock=clock)
    finally:
        await repository.aclose()


async def put(store: SqlOutboxStore, clock: FakeClock, *messages: OutboxMessage) -> None:
    async with store.sessions() as session, session.begin():
        enqueue(session, *messages, now=datetime.fromtimestamp(clock(), UTC))


class Recorder:
    """A handler that records what it got and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.jobs: list[OutboxJob] = []
        self.failing = False
        self.arrived = asyncio.Event()

    async def __call__(self, job: OutboxJob) -> None:
        if self.failing:
            raise WeComUnavailable("fake outage")
        self.jobs.append(job)
        self.arrived.set()


def test_routes_prefer_the_exact_topic_then_the_longest_prefix() -> None:
    a, b, c = Recorder(), Recorder(), Recorder()
    routes = Routes({"order.": a, "order.closed": b, "order.esc.": c})
    assert routes.handler_for("order.closed") is b
    assert routes.handler_for("order.created") is a
    assert routes.handler_for("order.esc.1") is c
    assert routes.handler_for("sla.check") is None
    with pytest.raises(ValueError, match="two"):
        route_table([("order.", a), ("order.", b)])


def test_backoff_doubles_is_capped_and_jittered() -> None:
    config = WorkerConfig(backoff_base_seconds=1, backoff_max_seconds=60)
    assert [backoff_seconds(n, config, lambda: 0.0) for n in (1, 2, 3, 6, 7, 40)] == [
        0.5,
        1,
        2,
        16,
        30,
        30,
    ]
    assert backoff_seconds(3, config, lambda: 0.999999) == pytest.approx(4, rel=1e-3)


async def test_a_failing_handler_is_retried_after_backoff_then_dead_lettered(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    recorder = Recorder()
    recorder.failing = True
    config = WorkerConfig(max_attempts=3, backoff_base_seconds=2)
    worker = OutboxWorker(store, Routes({"order.": recorder}), config=config, clock=clock)
    await put(store, clock, order_message("WO-1"))

    assert await worker.run_once() == 1
    assert await worker.run_once() == 0  # backing off
    clock.advance(2)  # backoff after attempt 1 is at most 2 s
    assert await worker.run_once() == 1
    clock.advance(4)
    assert await worker.run_once() == 1
    clock.advance(3600)
    assert await worker.run_once() == 0
    [dead] = await store.dead_letters(after=0, limit=10)
    assert dead.attempts == 3
    assert "fake outage" in dead.last_error

    recorder.failing = False
    assert await store.retry_dead(dead.id)
    assert await worker.run_once() == 1
    assert [job.payload["order_number"] for job in recorder.jobs] == ["WO-1"]
    assert await store.counts() == {"pending": 0, "dead": 0}


async def test_a_topic_without_a_handler_is_dead_lettered_in_the_end(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    worker = OutboxWorker(store, Routes({}), config=WorkerConfig(max_attempts=1), clock=clock)
    await put(store, clock, OutboxMessage("nobody.listens", {}))
    assert await worker.run_once() == 1
    [dead] = await store.dead_letters(after=0, limit=10)
    assert "no handler" in dead.last_error


async def test_a_running_worker_is_nudged_by_a_commit_and_stops_cleanly(
    store: SqlOutboxStore,
) -> None:
    # A poll of an hour: only the nudge can wake the worker for the job in time.
    recorder = Recorder()
    nudge = OutboxNudge()
    nudge.start()
    worker = OutboxWorker(
        store,
        Routes({"order.": recorder}),
        config=WorkerConfig(poll_seconds=3600),
        wake=nudge.event,
    )
    worker.start()
    try:
        async with store.sessions() as session, session.begin():
            enqueue(session, order_message("WO-9"), now=datetime(2020, 1, 1, tzinfo=UTC))
        await asyncio.wait_for(recorder.arrived.wait(), 20)
    finally:
        await worker.aclose()
        nudge.stop()
    assert [job.payload["order_number"] for job in recorder.jobs] == ["WO-9"]
