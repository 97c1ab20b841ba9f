"""The order lifecycle on real SQLite and PostgreSQL: routing at filing, every transition, who
may do it, races, deadlines and escalation, and the outbox messages each change writes in
its own transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from snapreport.dispatch.roles import Roles, admin_roles
from snapreport.errors import (
    InvalidInput,
    NotOrderOwner,
    NotPermitted,
    OrderAlreadyAccepted,
    OrderAlreadyClosed,
    OrderNotFound,
    OrderStateConflict,
)
from snapreport.orders.base import Order, OrderQuery
from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS
from tests.integration.dispatch_kit import CROWD, RACE_RULES, Desk, desk

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)


@pytest.fixture
async def kit(orders_url: str, clock: FakeClock) -> AsyncIterator[Desk]:
    async with desk(orders_url, clock) as made:
        yield made


def at(clock: FakeClock, seconds: float = 0) -> datetime:
    return datetime.fromtimestamp(clock.now + seconds, UTC)


# -- routing --------------------------------------------------------------------------------


async def test_a_report_is_routed_by_type_and_location_glob(kit: Desk) -> None:
    order = await kit.report("消防通道堵塞", "A区北门")

    assert order.team == "fire"
    assert order.assignee is None  # claim: every member is told, the first to accept has it
    assert order.due_accept_at == at(kit.clock, 30 * 60)
    assert order.due_resolve_at == at(kit.clock, 4 * 3600)
    assert order.escalation == 0
    (created,) = await kit.outbox("order.created")
    payload = created.payload
    assert payload["type"] == "order.created"
    assert payload["order_number"] == order.number
    assert payload["recipients"] == ["lisi", "wangwu"]  # the lead is not told
    assert payload["actor"] == "alice"
    assert payload["link"] == f"/console/orders/{order.number}"
    assert payload["order"]["team"] == "fire"
    assert f"接单 {order.number}" in payload["text"]
    assert "A区北门" in payload["text"]
    checks = await kit.outbox("sla.check")
    assert [(m.payload["level"], m.due_at) for m in checks] == [
        (1, order.due_accept_at),
        (2, order.due_resolve_at),
    ]
    assert {m.payload["order_number"] for m in checks} == {order.number}


async def test_a_location_glob_alone_routes_to_a_round_robin_team(kit: Desk) -> None:
    orders = [await kit.report("垃圾堆放", f"B区车库{i}") for i in range(3)]

    assert [o.team for o in orders] == ["property"] * 3
    assert [o.assignee for o in orders] == ["pm1", "pm2", "pm1"]
    created = await kit.outbox("order.created")
    assert [m.payload["recipients"] for m in created] == [["pm1"], ["pm2"], ["pm1"]]
    assert "派给了你" in created[0].payload["text"]
    events = await kit.dispatch.events(orders[1].number)
    assert [(e.kind, e.detail) for e in events][1] == ("assigned", "pm2")


async def test_what_matches_no_rule_takes_the_default(kit: Desk) -> None:
    order = await kit.report("消防通道堵塞", "C区")  # a fire type, but not a fire place
    assert order.team == "fire"
    assert order.due_accept_at == at(kit.clock, 2 * 3600)


async def test_without_rules_an_order_is_unrouted_and_nobody_is_told(
    orders_url: str, clock: FakeClock
) -> None:
    async with desk(orders_url, clock, rules="") as bare:
        order = await bare.report()
        assert (order.team, order.assignee, order.due_accept_at) == (None, None, None)
        (created,) = await bare.outbox()  # still announced (webhooks), but to nobody
        assert created.topic == "order.created"
        assert created.payload["recipients"] == []


# -- accept ---------------------------------------------------------------------------------


async def test_twenty_concurrent_accepts_have_exactly_one_winner(
    orders_url: str, clock: FakeClock
) -> None:
    async with desk(orders_url, clock, rules=RACE_RULES) as race:
        order = await race.report()
        before = await race.last_id()

        results = await asyncio.gather(
            *(race.dispatch.accept(order.number, member) for member in CROWD),
            return_exceptions=True,
        )

        winners = [r for r in results if isinstance(r, Order)]
        losers = [r for r in results if not isinstance(r, Order)]
        assert len(winners) == 1
        winner = winners[0].assignee
        assert winner in CROWD
        assert len(losers) == 19
        refused = [r for r in losers if isinstance(r, OrderAlreadyAccepted)]
        assert refused == losers, losers
        assert all(r.by == winner and winner in r.message for r in refused)
        stored = await race.dispatch.get(order.number)
        assert (stored.status, stored.assignee) == ("accepted", winner)
        accepted = [e for e in await race.dispatch.events(order.number) if e.kind == "accepted"]
        assert [e.actor for e in accepted] == [winner]
        (message,) = await race.outbox(after=before)
        assert message.topic == "order.accepted"
        assert message.payload["recipients"] == ["alice"]
        assert winner in message.payload["text"]


async def test_accepting_sets_the_assignee_and_time(kit: Desk) -> None:
    order = await kit.report()
    kit.clock.advance(60)
    accepted = await kit.dispatch.accept(order.number, "lisi")
    assert (accepted.status, accepted.assignee, accepted.accepted_at) == (
        "accepted",
        "lisi",
        at(kit.clock),
    )
    with pytest.raises(OrderAlreadyAccepted, match="lisi"):
        await kit.dispatch.accept(order.number, "wangwu")


# -- permissions ----------------------------------------------------------------------------


async def test_every_change_is_refused_to_the_wrong_role_and_nothing_is_written(
    kit: Desk,
) -> None:
    order = await kit.report()  # fire team; reporter alice
    before = await kit.last_id()
    events = await kit.dispatch.events(order.number)
    d = kit.dispatch
    pm1 = "pm1"  # member of another team: cannot even see it
    refusals = [
        (d.accept(order.number, "alice"), NotPermitted),  # the reporter is no member
        (d.accept(order.number, pm1), OrderNotFound),
        (d.transfer(order.number, "lisi", "property"), NotPermitted),  # a member, no lead
        (d.transfer(order.number, pm1, "property"), OrderNotFound),
        (d.reject(order.number, "lisi", "duplicate"), NotPermitted),
        (d.reject(order.number, "alice", "duplicate"), NotPermitted),
        (
            d.close(
                order.number, by="lisi", close_image_key=None, verified=None, note="", forced=False
            ),
            NotOrderOwner,
        ),
        (d.comment(order.number, pm1, "hello"), OrderNotFound),
        (d.reopen(order.number, pm1), OrderNotFound),
    ]
    for attempt, error in refusals:
        with pytest.raises(error) as refused:
            await attempt
        assert order.number in str(refused.value)
    assert await kit.dispatch.get(order.number) == order
    assert await kit.dispatch.events(order.number) == events
    assert await kit.outbox(after=before) == []


async def test_leads_dispatchers_and_admins_act_on_the_team_order(kit: Desk) -> None:
    first, second, third = [await kit.report() for _ in range(3)]
    lead = kit.dispatch.rules.roles_of("zhaoliu")
    assert (await kit.dispatch.reject(first.number, lead, "重复上报")).status == "rejected"
    closed = await kit.dispatch.close(
        second.number, by="dispatcher1", close_image_key=None, verified=None, note="", forced=False
    )
    assert closed.closed_by == "dispatcher1"
    accepted = await kit.dispatch.accept(third.number, admin_roles())
    assert accepted.assignee == "admin"


# -- transfer, reject, close, reopen, comment ------------------------------------------------


async def test_transfer_to_a_team_or_a_person(kit: Desk) -> None:
    order = await kit.report()
    await kit.dispatch.accept(order.number, "lisi")
    before = await kit.last_id()

    moved = await kit.dispatch.transfer(order.number, "zhaoliu", "property")
    assert (moved.team, moved.assignee, moved.status) == ("property", None, "open")
    (message,) = await kit.outbox(after=before)
    assert message.topic == "order.transferred"
    assert message.payload["recipients"] == ["pm1", "pm2"]

    handed = await kit.dispatch.transfer(order.number, "dispatcher1", "pm2")
    assert (handed.team, handed.assignee, handed.status) == ("property", "pm2", "open")
    assert (await kit.outbox("order.transferred"))[-1].payload["recipients"] == ["pm2"]
    with pytest.raises(NotPermitted, match="pm2"):
        await kit.dispatch.accept(order.number, "pm1")  # handed to pm2, not to pm1
    assert (await kit.dispatch.accept(order.number, "pm2")).status == "accepted"


async def test_the_assignee_transfers_only_within_the_team(kit: Desk) -> None:
    order = await kit.report()
    await kit.dispatch.accept(order.number, "lisi")
    with pytest.raises(NotPermitted, match="lead"):
        await kit.dispatch.transfer(order.number, "lisi", "property")
    with pytest.raises(NotPermitted, match="pm1"):
        await kit.dispatch.transfer(order.number, "lisi", "pm1")
    moved = await kit.dispatch.transfer(order.number, "lisi", "wangwu")
    assert (moved.team, moved.assignee) == ("fire", "wangwu")


async def test_reject_needs_a_reason_and_tells_the_reporter(kit: Desk) -> None:
    order = await kit.report()
    with pytest.raises(InvalidInput, match="reason"):
        await kit.dispatch.reject(order.number, "zhaoliu", "  ")
    rejected = await kit.dispatch.reject(order.number, "zhaoliu", "不是问题")
    assert (rejected.status, rejected.reject_reason) == ("rejected", "不是问题")
    (message,) = await kit.outbox("order.rejected")
    assert message.payload["recipients"] == ["alice"]
    assert "不是问题" in message.payload["text"]
    with pytest.raises(OrderStateConflict):
        await kit.dispatch.accept(order.number, "lisi")


async def test_close_by_the_assignee_or_a_lead_tells_the_reporter(kit: Desk) -> None:
    order = await kit.report()
    await kit.dispatch.accept(order.number, "lisi")
    closed = await kit.dispatch.close(
        order.number, by="lisi", close_image_key="media/after.jpg", verified=True,
        note="已清理", forced=False,
    )  # fmt: skip
    assert (closed.status, closed.closed_by) == ("closed", "lisi")
    (message,) = await kit.outbox("order.closed")
    assert message.payload["recipients"] == ["alice"]
    assert "已清理" in message.payload["text"]
    with pytest.raises(OrderAlreadyClosed):
        await kit.dispatch.close(
            order.number, by="zhaoliu", close_image_key=None, verified=None, note="",
            forced=False,
        )  # fmt: skip


async def test_the_reopen_window(kit: Desk) -> None:
    order = await kit.report()
    await kit.dispatch.accept(order.number, "lisi")
    await kit.dispatch.close(
        order.number, by="lisi", close_image_key=None, verified=None, note="", forced=False
    )
    kit.clock.advance(7 * 86400)  # exactly at the end of the window: still allowed
    before = await kit.last_id()
    reopened = await kit.dispatch.reopen(order.number, "alice", "还在漏")
    assert (reopened.status, reopened.assignee, reopened.escalation) == ("open", "lisi", 0)
    assert reopened.due_resolve_at == at(kit.clock, 4 * 3600)
    assert reopened.closed_at is None
    messages = await kit.outbox(after=before)
    assert [m.topic for m in messages] == ["order.reopened", "sla.check"]
    assert messages[0].payload["recipients"] == ["lisi"]  # the assignee is kept
    assert (messages[1].payload["level"], messages[1].due_at) == (2, reopened.due_resolve_at)

    await kit.dispatch.close(
        order.number, by="lisi", close_image_key=None, verified=None, note="", forced=False
    )
    kit.clock.advance(7 * 86400 + 1)
    with pytest.raises(NotPermitted, match="7 days") as late:
        await kit.dispatch.reopen(order.number, "alice")
    assert late.value.reason == "reopen_window"
    assert (await kit.dispatch.reopen(order.number, "zhaoliu")).status == "open"  # staff may


async def test_comments_are_logged_and_told_to_the_others(kit: Desk) -> None:
    order = await kit.report()
    await kit.dispatch.accept(order.number, "lisi")
    await kit.dispatch.comment(order.number, "lisi", "明天上午处理")
    (message,) = await kit.outbox("order.commented")
    assert message.payload["recipients"] == ["alice"]
    events = await kit.dispatch.events(order.number)
    assert (events[-1].kind, events[-1].actor, events[-1].detail) == (
        "commented",
        "lisi",
        "明天上午处理",
    )


# -- escalation -----------------------------------------------------------------------------


async def test_escalation_happens_once_per_level_and_only_when_due(kit: Desk) -> None:
    order = await kit.report()  # accept within 30 min, resolve within 4 h
    assert await kit.dispatch.escalate(order.number, 1) is None  # not yet due
    kit.clock.advance(30 * 60)
    first = await kit.dispatch.escalate(order.number, 1)
    assert first is not None
    assert first.escalation == 1
    assert await kit.dispatch.escalate(order.number, 1) is None  # a repeat changes nothing
    (leads,) = await kit.outbox("order.escalated")
    assert leads.payload["recipients"] == ["zhaoliu"]
    assert "超时未接单" in leads.payload["text"]

    kit.clock.advance(4 * 3600)
    second = await kit.dispatch.escalate(order.number, 2)
    assert second is not None
    assert second.escalation == 2
    escalated = await kit.outbox("order.escalated")
    assert escalated[-1].payload["recipients"] == ["dispatcher1"]  # dispatchers only
    assert [e.kind for e in await kit.dispatch.events(order.number)].count("escalated") == 2


async def test_an_accepted_order_does_not_escalate_for_acceptance(kit: Desk) -> None:
    order = await kit.report()
    await kit.dispatch.accept(order.number, "lisi")
    kit.clock.advance(3600)
    assert await kit.dispatch.escalate(order.number, 1) is None
    kit.clock.advance(4 * 3600)
    escalated = await kit.dispatch.escalate(order.number, 2)  # but it is late to be fixed
    assert escalated is not None
    assert escalated.escalation == 2


async def test_when_both_deadlines_passed_both_levels_happen_once(kit: Desk) -> None:
    order = await kit.report()
    kit.clock.advance(5 * 3600)
    escalated = await kit.dispatch.escalate(order.number, 2)  # the later check fired first
    assert escalated is not None
    assert escalated.escalation == 2
    assert await kit.dispatch.escalate(order.number, 1) is None
    assert await kit.dispatch.escalate(order.number, 2) is None
    messages = await kit.outbox("order.escalated")
    assert [m.payload["recipients"] for m in messages] == [["zhaoliu"], ["dispatcher1"]]
    kinds = [e.detail for e in await kit.dispatch.events(order.number) if e.kind == "escalated"]
    assert kinds == ["level 1", "level 2"]


async def test_overdue_listing(kit: Desk) -> None:
    late = await kit.report()
    kit.clock.advance(31 * 60)
    fresh = await kit.report()
    page = await kit.dispatch.page(
        OrderQuery(overdue_at=at(kit.clock)), Roles("dispatcher1", dispatcher=True)
    )
    assert [o.number for o in page.orders] == [late.number]
    assert fresh.number not in [o.number for o in page.orders]
