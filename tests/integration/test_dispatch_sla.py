"""SLA deadlines end to end, on SQLite and PostgreSQL: two app instances (two outbox workers)
on one database, deadlines of seconds on an injected clock, every deadline check delivered
three times over (as after retries and crashes): each escalation happens exactly once, and
leads then dispatchers are notified exactly once each."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from snapreport.app import App
from snapreport.bootstrap import build
from snapreport.orders.base import NewReport
from snapreport.outbox.base import OutboxMessage
from snapreport.outbox.sqlalchemy import SqlOutboxStore, enqueue
from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import make_settings

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

FAST = RULES.replace('accept_within = "30m"', 'accept_within = "2s"').replace(
    'resolve_within = "4h"', 'resolve_within = "4s"'
)
BOUND_SECONDS = 60.0


async def notifications(app: App, users: list[str]) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for user in users:
        for note in await app.notifications.list(user, after=0, limit=100):
            seen[(user, note.type)] += 1
    return seen


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after a generous bound."""
    try:
        async with asyncio.timeout(BOUND_SECONDS):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {BOUND_SECONDS} s: {what}")


async def test_an_sla_of_seconds_escalates_exactly_once_with_two_workers(
    tmp_path: Path, orders_url: str
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(FAST, encoding="utf-8")
    settings = make_settings(
        tmp_path,
        orders={"url": orders_url},
        dispatch={"rules_file": rules},
        outbox={"poll_seconds": 0.05},
    )
    clock = FakeClock(time.time())
    async with (
        build(settings, clock=clock, deliver=True) as first,
        build(settings, clock=clock, deliver=True) as second,
    ):
        order = await first.dispatch.create(
            NewReport(
                reporter="alice",
                alarm_type="消防通道堵塞",
                location="A区北门",
                description="堵了",
                image_key=None,
            )
        )
        # every deadline check twice more, as a retry after a crash would deliver it
        store = SqlOutboxStore(second.orders.engine)  # type: ignore[attr-defined]
        async with store.sessions() as session, session.begin():
            enqueue(
                session,
                *(
                    OutboxMessage(
                        "sla.check", {"order_number": order.number, "level": level}, due_at=due
                    )
                    for level, due in ((1, order.due_accept_at), (2, order.due_resolve_at))
                    for _ in range(2)
                ),
            )

        async def created_delivered() -> bool:
            return (await notifications(first, ["lisi", "wangwu"])) == Counter(
                {("lisi", "order.created"): 1, ("wangwu", "order.created"): 1}
            )

        await until(created_delivered, "order.created delivered")
        assert (await first.dispatch.get(order.number)).escalation == 0  # nothing due yet

        clock.advance(5)  # both deadlines passed

        async def drained() -> bool:
            counts = await store.counts()
            return (
                counts["pending"] == 0 and (await first.dispatch.get(order.number)).escalation == 2
            )

        await until(drained, "every check run")

        # the notifications of the escalations are delivered by then or shortly after
        async def escalations_told() -> bool:
            told = await notifications(second, ["zhaoliu", "dispatcher1"])
            return sum(told.values()) >= 2

        await until(escalations_told, "escalations delivered")
        await until(drained, "nothing left")

        events = await second.dispatch.events(order.number)
        assert [e.detail for e in events if e.kind == "escalated"] == ["level 1", "level 2"]
        assert await notifications(first, ["zhaoliu", "dispatcher1", "lisi", "alice"]) == Counter(
            {
                ("zhaoliu", "order.escalated"): 1,
                ("dispatcher1", "order.escalated"): 1,
                ("lisi", "order.created"): 1,
            }
        )
        assert await store.counts() == {"pending": 0, "dead": 0}
