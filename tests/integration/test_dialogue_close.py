"""Whole close conversations: 结单, the verification loop, force close, and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.errors import StoreUnavailable
from snapreport.orders.base import NewReport, Order
from snapreport.orders.repository import SqlOrderRepository
from tests.harness.clock import FakeClock
from tests.harness.fake_vlm import FakeVLM
from tests.integration.dialogue_kit import (
    USER,
    FlakyOrders,
    Kit,
    dialogue,
    png_bytes,
    vlm_vision,
)

BEFORE, AFTER, AGAIN = png_bytes((200, 0, 0)), png_bytes((0, 200, 0)), png_bytes((0, 0, 200))


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm)) as built:
        yield built


@pytest.fixture
async def manual(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock) as built:
        yield built


async def assigned_order(
    kit: Kit, *, assignee: str = USER, reporter: str = "alarm-system"
) -> Order:
    return await kit.orders.create(
        NewReport(
            reporter=reporter,
            alarm_type="漏水",
            location="B区地下室",
            description="水管破裂",
            image_key=None,
            assignee=assignee,
            source="api",
        )
    )


async def test_a_close_verified_as_resolved_closes_the_order(kit: Kit, fake_vlm: FakeVLM) -> None:
    order = await kit.report(data=BEFORE)
    fake_vlm.reset()

    outcome = await kit.text(f"结单 {order.number}")
    assert outcome.state == "waiting_close_photo"
    assert order.number in outcome.replies[0].text
    assert "照片" in outcome.replies[0].text
    session = await kit.session()
    assert (session.slots.order_id, session.slots.alarm_id) == (order.number, order.alarm_id)
    assert session.slots.image_key == order.image_key

    fake_vlm.enqueue_json({"resolved": True, "note": "杂物已清走"})
    outcome = await kit.photo(AFTER)
    assert outcome.state == "idle"
    closed = outcome.order
    assert closed is not None
    assert (closed.number, closed.status, closed.closed_by) == (order.number, "closed", USER)
    assert (closed.close_verified, closed.forced, closed.close_note) == (True, False, "杂物已清走")
    assert closed.close_image_key not in (None, order.image_key)
    assert "杂物已清走" in outcome.replies[0].text
    # one request comparing the original photo with the new one
    (request,) = fake_vlm.requests
    assert request.image_count == 2
    assert (await kit.session()).slots.order_id == ""


async def test_not_resolved_says_why_stays_and_logs_the_photo(kit: Kit, fake_vlm: FakeVLM) -> None:
    order = await kit.report(data=BEFORE)
    await kit.text(f"close {order.number}")
    fake_vlm.enqueue_json({"resolved": False, "note": "通道里仍有纸箱"})
    outcome = await kit.photo(AFTER)
    assert outcome.state == "waiting_close_photo"
    assert outcome.order is None
    assert "通道里仍有纸箱" in outcome.replies[0].text
    assert "强制结单" in outcome.replies[0].text
    assert (await kit.orders.get(order.number)).status == "open"
    rejected = [e for e in await kit.events(order.number) if e.kind == "close_photo_rejected"]
    assert len(rejected) == 1
    assert rejected[0].actor == USER
    assert "通道里仍有纸箱" in rejected[0].detail
    assert (await kit.session()).slots.close_attempts == 1

    fake_vlm.enqueue_json({"resolved": True, "note": "已清理"})
    outcome = await kit.photo(AGAIN)
    assert outcome.state == "idle"
    assert outcome.order is not None
    assert outcome.order.close_verified is True


async def test_force_close_only_after_a_close_photo(kit: Kit, fake_vlm: FakeVLM) -> None:
    order = await kit.report(data=BEFORE)
    await kit.text(f"结单 {order.number}")
    outcome = await kit.text("强制结单")
    assert outcome.state == "waiting_close_photo"
    assert outcome.order is None
    assert "照片" in outcome.replies[0].text
    assert (await kit.orders.get(order.number)).status == "open"

    fake_vlm.enqueue_json({"resolved": False, "note": "看不到处理后的现场"})
    await kit.photo(AFTER)
    outcome = await kit.text("Force close!")
    assert outcome.state == "idle"
    closed = outcome.order
    assert closed is not None
    assert (closed.status, closed.forced, closed.close_verified) == ("closed", True, False)
    assert closed.close_image_key is not None
    assert order.number in outcome.replies[0].text
    kinds = [e.kind for e in await kit.events(order.number)]
    assert kinds == ["created", "close_photo_rejected", "closed"]


@pytest.mark.parametrize("status", [429, 500])
async def test_a_failing_vlm_closes_unverified_and_keeps_the_photo(
    kit: Kit, fake_vlm: FakeVLM, status: int
) -> None:
    order = await kit.report(data=BEFORE)
    await kit.text(f"结单 {order.number}")
    fake_vlm.enqueue_error(status)
    fake_vlm.enqueue_error(status)
    outcome = await kit.photo(AFTER)
    assert outcome.state == "idle"
    closed = outcome.order
    assert closed is not None
    assert (closed.status, closed.close_verified, closed.forced) == ("closed", None, False)
    assert closed.close_image_key is not None
    assert len(kit.stored_media()) == 2
    assert "未经自动核验" in outcome.replies[0].text


async def test_manual_mode_closes_unverified(manual: Kit) -> None:
    order = await manual.report(data=BEFORE)
    await manual.text(f"结单 {order.number}")
    outcome = await manual.photo(AFTER)
    assert outcome.order is not None
    assert (outcome.order.status, outcome.order.close_verified) == ("closed", None)


async def test_an_alarm_without_a_photo_closes_unverified(kit: Kit, fake_vlm: FakeVLM) -> None:
    order = await assigned_order(kit)
    outcome = await kit.text(f"结单 {order.number}")
    assert outcome.state == "waiting_close_photo"
    outcome = await kit.photo(AFTER)
    assert outcome.order is not None
    assert outcome.order.close_verified is None
    assert fake_vlm.requests == []  # nothing to compare with


async def test_the_assignee_may_close(kit: Kit) -> None:
    order = await assigned_order(kit)
    outcome = await kit.text(f"结单 {order.number}")
    assert outcome.state == "waiting_close_photo"
    assert "B区地下室" in outcome.replies[0].text


async def test_closing_someone_elses_order_is_refused(kit: Kit) -> None:
    order = await kit.report("lisi")
    outcome = await kit.text(f"结单 {order.number}")
    assert outcome.state == "idle"
    assert "不是您上报或负责的" in outcome.replies[0].text
    assert await kit.state() == "idle"
    assert (await kit.orders.get(order.number)).status == "open"


async def test_an_unknown_order_number(kit: Kit) -> None:
    outcome = await kit.text("结单 WO-20991231-0042")
    assert outcome.state == "idle"
    assert "找不到工单 WO-20991231-0042" in outcome.replies[0].text


async def test_an_absurd_order_number_is_answered_briefly(kit: Kit) -> None:
    outcome = await kit.text("结单 " + "X" * 1500)
    assert outcome.state == "idle"
    assert len(outcome.replies[0].text) < 100


async def test_an_order_already_closed(kit: Kit, fake_vlm: FakeVLM) -> None:
    order = await kit.report(data=BEFORE)
    await kit.text(f"结单 {order.number}")
    await kit.photo(AFTER)
    outcome = await kit.text(f"结单 {order.number}")
    assert outcome.state == "idle"
    assert "已经关闭" in outcome.replies[0].text


async def test_an_order_closed_meanwhile_by_someone_else(kit: Kit) -> None:
    order = await assigned_order(kit, reporter="lisi")
    await kit.text(f"结单 {order.number}")
    await kit.dispatch.close(
        order.number, by="lisi", close_image_key=None, verified=None, note="", forced=False
    )
    outcome = await kit.photo(AFTER)
    assert outcome.state == "idle"
    assert outcome.order is None
    assert "已经关闭" in outcome.replies[0].text


async def test_order_numbers_are_matched_ignoring_case(kit: Kit) -> None:
    order = await kit.report()
    outcome = await kit.text(f"结单 {order.number.lower()}")
    assert outcome.state == "waiting_close_photo"
    assert (await kit.session()).slots.order_id == order.number


async def test_close_alone_without_open_orders(kit: Kit) -> None:
    outcome = await kit.text("结单")
    assert outcome.state == "idle"
    assert "没有可以结单的工单" in outcome.replies[0].text


async def test_close_alone_with_one_open_order_takes_it(kit: Kit) -> None:
    order = await kit.report()
    outcome = await kit.text("close")
    assert outcome.state == "waiting_close_photo"
    assert order.number in outcome.replies[0].text


async def several_orders(kit: Kit) -> list[Order]:
    first = await kit.report(location="一号楼")
    second = await kit.report(location="二号楼")
    third = await assigned_order(kit)
    return [third, second, first]  # newest first, as they are listed


async def test_close_alone_with_several_lists_them_and_takes_a_number(kit: Kit) -> None:
    orders = await several_orders(kit)
    outcome = await kit.text("结单")
    assert outcome.state == "idle"
    listing = outcome.replies[0].text
    for index, order in enumerate(orders, 1):
        assert f"{index}. {order.number}" in listing
    assert (await kit.session()).slots.choices == [o.number for o in orders]

    outcome = await kit.text("2")
    assert outcome.state == "waiting_close_photo"
    assert (await kit.session()).slots.order_id == orders[1].number


async def test_the_list_can_be_answered_with_the_order_number(kit: Kit) -> None:
    orders = await several_orders(kit)
    await kit.text("结单")
    outcome = await kit.text(orders[2].number.lower())
    assert outcome.state == "waiting_close_photo"
    assert (await kit.session()).slots.order_id == orders[2].number


async def test_close_n_answers_the_list_too(kit: Kit) -> None:
    orders = await several_orders(kit)
    await kit.text("结单")
    outcome = await kit.text("结单 3")
    assert outcome.state == "waiting_close_photo"
    assert (await kit.session()).slots.order_id == orders[2].number


async def test_a_number_outside_the_list_asks_again(kit: Kit) -> None:
    orders = await several_orders(kit)
    await kit.text("结单")
    outcome = await kit.text("7")
    assert outcome.state == "idle"
    assert "1-3" in outcome.replies[0].text
    assert (await kit.session()).slots.choices == [o.number for o in orders]
    outcome = await kit.text("1")
    assert outcome.state == "waiting_close_photo"


async def test_the_list_answers_only_the_next_message(kit: Kit) -> None:
    await several_orders(kit)
    await kit.text("结单")
    await kit.text("今天天气不错")
    assert (await kit.session()).slots.choices == []
    outcome = await kit.text("1")
    assert outcome.state == "idle"


async def test_help_keeps_the_list(kit: Kit) -> None:
    orders = await several_orders(kit)
    await kit.text("结单")
    outcome = await kit.text("帮助")
    assert "1-3" in outcome.replies[0].text
    outcome = await kit.text("3")
    assert outcome.state == "waiting_close_photo"
    assert (await kit.session()).slots.order_id == orders[2].number


async def test_other_text_asks_for_the_photo(kit: Kit, fake_vlm: FakeVLM) -> None:
    order = await kit.report()
    await kit.text(f"结单 {order.number}")
    for text in ("已经修好了", "确认"):
        outcome = await kit.text(text)
        assert outcome.state == "waiting_close_photo"
        assert "请发送工单" in outcome.replies[0].text
    outcome = await kit.location(label="B区")
    assert outcome.state == "waiting_close_photo"


async def test_the_orders_store_failing_at_close_changes_nothing(
    tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM
) -> None:
    flaky: list[FlakyOrders] = []

    def wrap(inner: SqlOrderRepository) -> FlakyOrders:
        flaky.append(FlakyOrders(inner))
        return flaky[0]

    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm), wrap_orders=wrap) as kit:
        order = await kit.report(data=BEFORE)
        await kit.text(f"结单 {order.number}")
        before = await kit.session()
        flaky[0].failing.add("apply")
        with pytest.raises(StoreUnavailable):
            await kit.photo(AFTER)
        after = await kit.session()
        assert (after.state, after.version, after.slots) == (
            "waiting_close_photo",
            before.version,
            before.slots,
        )
        assert (await kit.orders.get(order.number)).status == "open"

        flaky[0].failing.clear()
        outcome = await kit.photo(AFTER)
        assert outcome.order is not None
        assert outcome.order.status == "closed"


async def test_the_close_in_english(tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM) -> None:
    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm), language="en") as kit:
        order = await kit.report(data=BEFORE)
        outcome = await kit.text(f"close {order.number}")
        assert outcome.replies[0].text.startswith(f"Closing work order {order.number}")
        fake_vlm.enqueue_json({"resolved": False, "note": "boxes are still there"})
        outcome = await kit.photo(AFTER)
        assert outcome.replies[0].text.startswith(
            "The photo does not show the problem fixed yet: boxes are still there"
        )
        outcome = await kit.text("force close")
        assert (
            outcome.replies[0].text
            == f"Work order {order.number} was force-closed; this is recorded."
        )
