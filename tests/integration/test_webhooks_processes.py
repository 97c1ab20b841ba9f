"""Webhooks with server processes on PostgreSQL and SQLite: a process SIGKILLed while its
POSTs are on their way leaves them to the processes started after it. Every change then
reaches the receiver under one webhook-id, and the only ones sent twice are those the killed
process had sent without an answer: the duplicates a receiver deduplicates by webhook-id
(docs/integrations.md)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.sqlalchemy import SqlOutboxStore, enqueue
from snapreport.webhooks.store import SqlWebhooks
from snapreport.webhooks.targets import TargetCheck
from tests.harness.fake_wecom import FakeWeCom
from tests.harness.outbox_kit import BACKENDS, order_message
from tests.harness.webhook_receiver import webhook_receiver
from tests.integration.outbox_processes import start_worker, worker_env

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

CHANGES = 20
WAIT_SECONDS = 90.0


@pytest.fixture
async def repo(orders_url: str) -> AsyncIterator[SqlOrderRepository]:
    repository = await SqlOrderRepository.connect(orders_url)
    try:
        yield repository
    finally:
        await repository.aclose()


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def test_a_process_killed_mid_delivery_leaves_each_webhook_to_the_next_ones(
    tmp_path: Path, orders_url: str, repo: SqlOrderRepository, fake_wecom: FakeWeCom
) -> None:
    async with webhook_receiver() as receiver:
        webhooks = SqlWebhooks(repo.engine, TargetCheck(allow_private=True), max_endpoints=10)
        endpoint, secret = await webhooks.subscribe(receiver.url + "/hook", ["*"], "processes")
        store = SqlOutboxStore(repo.engine)
        numbers = [f"WO-{i}" for i in range(CHANGES)]
        async with store.sessions() as session, session.begin():
            enqueue(session, *(order_message(number) for number in numbers))
        env = worker_env(
            tmp_path,
            orders_url,
            fake_wecom.url,
            poll_seconds="0.05",
            lease_seconds="3",
            handler_timeout_seconds="2",
            wecom_pacing_max_wait_seconds="1",
        )
        env["SNAPREPORT_WEBHOOKS__ALLOW_PRIVATE"] = "true"

        receiver.answering.clear()  # the first process's POSTs arrive and wait for answers
        first = await asyncio.to_thread(start_worker, env)
        try:
            await receiver.wait_for(1)
        finally:
            await asyncio.to_thread(kill, first)
        in_flight = {r.webhook_id for r in receiver.received}
        assert in_flight
        receiver.answering.set()  # what it held is answered into a closed connection

        started = []
        try:
            for _ in range(2):
                started.append(await asyncio.to_thread(start_worker, env))
            async with asyncio.timeout(WAIT_SECONDS):
                while (
                    len({r.webhook_id for r in receiver.received}) < CHANGES
                    or (await store.counts())["pending"]
                ):
                    await asyncio.sleep(0.05)
        finally:
            for process in started:
                await asyncio.to_thread(kill, process)

    sent = Counter(r.webhook_id for r in receiver.received)
    assert len(sent) == CHANGES  # one message per change
    # sent twice: exactly those the killed process had sent without an answer
    assert {i for i, n in sent.items() if n == 2} == in_flight
    assert max(sent.values()) == 2
    numbers_by_id = {r.webhook_id: json.loads(r.body)["data"]["number"] for r in receiver.received}
    assert sorted(numbers_by_id.values()) == sorted(numbers)
    for request in receiver.received:  # a repeat is the same message, signed afresh
        Webhook(secret).verify(request.body, request.headers)
        assert json.loads(request.body)["data"]["number"] == numbers_by_id[request.webhook_id]

    log = await webhooks.attempts(endpoint.id, limit=200)
    assert Counter(a.message_id for a in log) == Counter(set(sent))  # each logged once
    assert {a.status_code for a in log} == {200}
    assert {a.attempt for a in log} == {1}
    assert await store.counts() == {"pending": 0, "dead": 0}
