"""The staff commands in the dialogue (接单, 转派, 退回, 没修好, 待办 and English), with the
rules of the examples: what each does, that every refusal is a reply saying why, that a
second claimant is told who has the order, and that closing works for the assignee and a
lead as for the reporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.dispatch.rules import parse_rules
from tests.harness.clock import FakeClock
from tests.integration.dialogue_kit import USER, Kit, dialogue
from tests.integration.dispatch_kit import RULES


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, rules=parse_rules(RULES)) as built:
        yield built


@pytest.fixture
async def english(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, rules=parse_rules(RULES), language="en") as built:
        yield built


async def reply(kit: Kit, text: str, user: str) -> str:
    outcome = await kit.text(text, user)
    return "\n".join(r.text for r in outcome.replies)


async def test_a_chat_report_is_routed_and_a_member_accepts_it(kit: Kit) -> None:
    order = await kit.report()  # 未分类 at 3号楼: the default, team fire
    assert order.team == "fire"
    answer = await reply(kit, f"接单 {order.number}", "lisi")
    assert "已接单" in answer
    assert order.number in answer
    stored = await kit.dispatch.get(order.number)
    assert (stored.status, stored.assignee) == ("accepted", "lisi")
    second = await reply(kit, f"接单 {order.number}", "wangwu")
    assert "lisi" in second
    assert "已被" in second


async def test_concurrent_chat_accepts_one_wins_the_others_hear_who(kit: Kit) -> None:
    order = await kit.report()
    answers = await asyncio.gather(
        *(reply(kit, f"接单 {order.number}", user) for user in ("lisi", "wangwu", "zhaoliu"))
    )
    winner = (await kit.dispatch.get(order.number)).assignee
    assert winner in ("lisi", "wangwu", "zhaoliu")
    assert sum("已接单" in a for a in answers) == 1
    assert all(winner in a for a in answers if "已接单" not in a)


async def test_every_refusal_says_why(kit: Kit, clock: FakeClock) -> None:
    order = await kit.report()
    n = order.number
    cases = [
        (f"接单 {n}", USER, "不属于您所在的组"),  # the reporter is no member
        (f"接单 {n}", "pm1", "找不到工单"),  # another team's member cannot see it
        (f"退回 {n} 重复", "lisi", "只有工单"),  # a member is no lead
        (f"转派 {n} property", "lisi", "只有工单"),
        (f"退回 {n}", "zhaoliu", "请写明原因"),
        (f"转派 {n}", "zhaoliu", "转派请发送"),
        (f"没修好 {n}", USER, "当前为“待接单”"),  # not closed
        ("接单 WO-20991231-0001", "lisi", "找不到工单"),
    ]
    for text, user, expected in cases:
        answer = await reply(kit, text, user)
        assert expected in answer, (text, user, answer)
    assert (await kit.dispatch.get(n)).status == "open"


async def test_transfer_reject_and_tasks(kit: Kit) -> None:
    first = await kit.report()
    second = await kit.report(location="A区北门")
    tasks = await reply(kit, "待办", "lisi")
    assert first.number in tasks
    assert second.number in tasks
    assert "待接单" in tasks

    moved = await reply(kit, f"转派 {first.number} wangwu", "zhaoliu")
    assert "wangwu" in moved
    assert first.number not in await reply(kit, "待办", "lisi")  # handed to wangwu now
    await reply(kit, f"接单 {first.number}", "wangwu")
    assert "我处理中" in await reply(kit, "待办", "wangwu")

    rejected = await reply(kit, f"退回 {second.number} 重复上报", "zhaoliu")
    assert "已退回" in rejected
    stored = await kit.dispatch.get(second.number)
    assert (stored.status, stored.reject_reason) == ("rejected", "重复上报")
    again = await reply(kit, f"接单 {second.number}", "lisi")
    assert "已退回" in again  # its status, named


async def test_the_assignee_and_a_lead_close_by_photo_the_reporter_reopens(
    kit: Kit, clock: FakeClock
) -> None:
    order = await kit.report()
    await reply(kit, f"接单 {order.number}", "lisi")
    asked = await kit.text(f"结单 {order.number}", "lisi")
    assert asked.state == "waiting_close_photo"
    closed = await kit.photo(user="lisi")
    assert closed.order is not None
    assert (closed.order.status, closed.order.closed_by) == ("closed", "lisi")

    reopened = await reply(kit, f"没修好 {order.number}", USER)
    assert "重新打开" in reopened
    assert (await kit.dispatch.get(order.number)).status == "open"

    by_lead = await kit.text(f"结单 {order.number}", "zhaoliu")
    assert by_lead.state == "waiting_close_photo"
    done = await kit.photo(user="zhaoliu")
    assert done.order is not None
    assert done.order.closed_by == "zhaoliu"
    refused = await kit.text(f"结单 {order.number}", "wangwu")  # a member, not the assignee
    assert refused.state == "idle"

    clock.advance(8 * 86400)
    late = await reply(kit, f"没修好 {order.number}", USER)
    assert "期限" in late
    assert (await kit.dispatch.get(order.number)).status == "closed"


async def test_staff_commands_leave_a_pending_report_alone(kit: Kit) -> None:
    order = await kit.report("alice")
    await kit.photo(user="lisi")
    assert await kit.state("lisi") == "waiting_location"
    outcome = await kit.text(f"接单 {order.number}", "lisi")
    assert outcome.state == "waiting_location"
    assert (await kit.dispatch.get(order.number)).assignee == "lisi"
    follow = await kit.text("3号楼东侧", "lisi")
    assert follow.state == "waiting_confirm"


async def test_english_commands(english: Kit) -> None:
    order = await english.report()
    answer = await reply(english, f"accept {order.number.lower()}", "lisi")
    assert "Accepted" in answer
    taken = await reply(english, f"accept {order.number}", "wangwu")
    assert "already accepted by lisi" in taken
    tasks = await reply(english, "my tasks", "lisi")
    assert order.number in tasks
    assert "rejected" in await reply(english, f"reject {order.number} duplicate", "zhaoliu")
    small_talk = await english.text("reject that idea", "lisi")
    assert small_talk.state == "idle"
    assert (await english.dispatch.get(order.number)).reject_reason == "duplicate"
