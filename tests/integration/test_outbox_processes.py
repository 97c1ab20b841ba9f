"""Outbox workers in separate server processes, on PostgreSQL and SQLite: several processes
deliver each notification once; a process SIGKILLed mid-delivery leaves its job to the next
worker once the lease runs out."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.notifications import SqlNotifications
from snapreport.outbox.sqlalchemy import SqlOutboxStore, enqueue
from snapreport.outbox.tables import NotificationRow
from tests.harness.fake_wecom import FakeWeCom
from tests.harness.outbox_kit import BACKENDS, order_message
from tests.integration.outbox_processes import PUBLIC_URL, start_worker, worker_env, workers

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)


@pytest.fixture
async def repo(orders_url: str) -> AsyncIterator[SqlOrderRepository]:
    repository = await SqlOrderRepository.connect(orders_url)
    try:
        yield repository
    finally:
        await repository.aclose()


async def notification_count(repo: SqlOrderRepository) -> int:
    store = SqlOutboxStore(repo.engine)
    async with store.sessions() as session:
        count: int = (await session.execute(select(func.count(NotificationRow.id)))).scalar_one()
    return count


async def until_drained(store: SqlOutboxStore, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while (await store.counts())["pending"]:
            await asyncio.sleep(0.05)


async def test_several_worker_processes_deliver_each_notification_once(
    tmp_path: Path, orders_url: str, repo: SqlOrderRepository, fake_wecom: FakeWeCom
) -> None:
    # 20 messages a member: within WeCom's pacing of 28 a minute, so nothing waits for room
    users = [f"user{i}" for i in range(10)]
    marks = SqlNotifications(repo.engine)
    for user in users:
        await marks.mark_wecom_user(user)
    store = SqlOutboxStore(repo.engine)
    env = worker_env(tmp_path, orders_url, fake_wecom.url, poll_seconds="0.05", batch_size="10")
    with workers(env, 3):
        for start in range(0, 20, 5):
            async with store.sessions() as session, session.begin():
                enqueue(
                    session,
                    *(order_message(f"WO-{i}", recipients=users) for i in range(start, start + 5)),
                )
        await asyncio.to_thread(fake_wecom.wait_for_sent, 200, 120)
        await until_drained(store)
    sends = Counter((m["touser"], m["textcard"]["url"]) for m in fake_wecom.sent)
    assert sends == Counter(
        {(u, f"{PUBLIC_URL}/console/orders/WO-{i}"): 1 for u in users for i in range(20)}
    )
    assert await notification_count(repo) == 200
    assert await store.counts() == {"pending": 0, "dead": 0}


async def test_a_worker_killed_mid_delivery_is_taken_over_after_its_lease(
    tmp_path: Path, orders_url: str, repo: SqlOrderRepository, fake_wecom: FakeWeCom
) -> None:
    await SqlNotifications(repo.engine).mark_wecom_user("lisi")
    store = SqlOutboxStore(repo.engine)
    env = worker_env(
        tmp_path,
        orders_url,
        fake_wecom.url,
        poll_seconds="0.05",
        lease_seconds="3",
        handler_timeout_seconds="2",
        wecom_pacing_max_wait_seconds="1",
    )
    fake_wecom.hold()
    first = start_worker(env)
    try:
        async with store.sessions() as session, session.begin():
            enqueue(session, order_message("WO-1", recipients=["lisi"]))
        # the send is on its way to WeCom: kill the process there
        await asyncio.to_thread(fake_wecom.wait_for, lambda f: f.held == 1, 60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    fake_wecom.release(drop=True)  # what the dead process sent never arrived
    assert fake_wecom.sent == []
    with workers(env, 1):
        [message] = await asyncio.to_thread(fake_wecom.wait_for_sent, 1, 60)
        await until_drained(store)
    assert message["touser"] == "lisi"
    assert len(fake_wecom.sent) == 1
    assert await notification_count(repo) == 1
