"""The outbox store on SQLite and PostgreSQL: enqueue commits with the caller, claims are
exclusive and fenced, failures reschedule or dead-letter, dead letters can be retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from snapreport.errors import InvalidInput
from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.base import Failure, OutboxMessage, OutboxStore
from snapreport.outbox.sqlalchemy import SqlOutboxStore, complete_in, enqueue
from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS, order_message

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)


@pytest.fixture
async def repo(orders_url: str, clock: FakeClock) -> AsyncIterator[SqlOrderRepository]:
    repository = await SqlOrderRepository.connect(orders_url, clock=clock)
    try:
        yield repository
    finally:
        await repository.aclose()


@pytest.fixture
def store(repo: SqlOrderRepository, clock: FakeClock) -> SqlOutboxStore:
    return SqlOutboxStore(repo.engine, clock=clock)


def now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


async def put(store: SqlOutboxStore, clock: FakeClock, *messages: OutboxMessage) -> None:
    async with store.sessions() as session, session.begin():
        enqueue(session, *messages, now=now(clock))


async def test_satisfies_the_port(store: SqlOutboxStore) -> None:
    port: OutboxStore = store
    assert await port.counts() == {"pending": 0, "dead": 0}


async def test_enqueue_commits_with_the_caller_and_not_without(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    async def change_that_fails() -> None:
        async with store.sessions() as session, session.begin():
            enqueue(session, order_message("WO-1"), now=now(clock))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    assert await store.claim(10, 30) == []

    await put(store, clock, order_message("WO-2"))
    [job] = await store.claim(10, 30)
    assert job.topic == "order.created"
    assert job.payload["order_number"] == "WO-2"
    assert job.attempt == 1
    assert job.due_at == now(clock)


async def test_a_claimed_job_is_not_claimed_again_until_its_lease_runs_out(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    await put(store, clock, order_message("WO-1"))
    [first] = await store.claim(10, 30)
    assert await store.claim(10, 30) == []
    assert await store.next_due() == now(clock) + timedelta(seconds=30)

    clock.advance(30)
    [again] = await store.claim(10, 30)
    assert (again.id, again.attempt) == (first.id, 2)
    # The first claimant's lease is gone: completing with it changes nothing.
    assert await store.complete([first]) == 0
    assert await store.complete([again]) == 1
    assert await store.counts() == {"pending": 0, "dead": 0}


async def test_due_at_in_the_future_waits(store: SqlOutboxStore, clock: FakeClock) -> None:
    later = now(clock) + timedelta(minutes=5)
    await put(store, clock, OutboxMessage("sla.check", {"order_number": "WO-1"}, due_at=later))
    assert await store.claim(10, 30) == []
    assert await store.next_due() == later
    clock.advance(300)
    assert [job.topic for job in await store.claim(10, 30)] == ["sla.check"]


async def test_concurrent_claims_hand_out_each_job_once(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    await put(store, clock, *(order_message(f"WO-{i}") for i in range(60)))
    batches = await asyncio.gather(*(store.claim(7, 30) for _ in range(12)))
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_failures_reschedule_then_dead_letter_and_retry_revives(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    await put(store, clock, order_message("WO-1"))
    [job] = await store.claim(10, 30)
    await store.fail([Failure(job, "wecom down", now(clock) + timedelta(seconds=2))])
    assert await store.next_due() == now(clock) + timedelta(seconds=2)
    clock.advance(2)
    [job] = await store.claim(10, 30)
    await store.fail([Failure(job, "still down", None)])
    assert await store.claim(10, 30) == []
    [dead] = await store.dead_letters(after=0, limit=10)
    assert (dead.id, dead.attempts, dead.last_error) == (job.id, 2, "still down")
    assert await store.counts() == {"pending": 0, "dead": 1}

    assert await store.retry_dead(job.id)
    assert not await store.retry_dead(job.id)
    [revived] = await store.claim(10, 30)
    assert (revived.id, revived.attempt) == (job.id, 1)


async def test_complete_in_commits_with_the_handlers_writes_only_under_the_claim(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    await put(store, clock, order_message("WO-1"))
    [stale] = await store.claim(10, 30)
    clock.advance(30)
    [held] = await store.claim(10, 30)
    async with store.sessions() as session, session.begin():
        assert not await complete_in(session, stale)
        assert await complete_in(session, held)
    assert await store.counts() == {"pending": 0, "dead": 0}


async def test_unstorable_messages_are_refused(store: SqlOutboxStore, clock: FakeClock) -> None:
    async with store.sessions() as session, session.begin():
        with pytest.raises(InvalidInput, match="JSON"):
            enqueue(session, OutboxMessage("order.created", {"at": object()}))
        with pytest.raises(InvalidInput, match="topic"):
            enqueue(session, OutboxMessage("x" * 65, {}))
        with pytest.raises(InvalidInput, match="timezone"):
            enqueue(session, OutboxMessage("sla.check", {}, due_at=datetime(2026, 1, 1)))


async def test_ids_of_delivered_messages_are_never_handed_out_again(
    store: SqlOutboxStore, clock: FakeClock
) -> None:
    await put(store, clock, order_message("WO-1"))
    [first] = await store.claim(10, 30)
    assert await store.complete([first]) == 1
    await put(store, clock, order_message("WO-2"))
    [second] = await store.claim(10, 30)
    assert second.id > first.id
    # the first job's late completion must not delete the second one
    assert await store.complete([first]) == 0
    assert await store.counts() == {"pending": 1, "dead": 0}
