"""Whole report conversations through the real workflow, adapters and the fake VLM server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.errors import StoreUnavailable
from snapreport.orders.repository import SqlOrderRepository
from snapreport.session.history import ImagePart, TextPart
from snapreport.vision.base import UNCLASSIFIED
from tests.harness.clock import FakeClock
from tests.harness.fake_vlm import FakeVLM
from tests.integration.dialogue_kit import (
    USER,
    FlakyOrders,
    Kit,
    dialogue,
    jpeg_bytes,
    png_bytes,
    vlm_vision,
)

RED, BLUE = png_bytes((220, 30, 30)), png_bytes((30, 30, 220))


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm)) as built:
        yield built


@pytest.fixture
async def manual(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock) as built:
        yield built


async def test_photo_location_and_yes_file_an_order(kit: Kit, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_json(
        {"alarm_type": "垃圾堆放", "description": "楼道堆放了大量垃圾袋。", "confidence": 0.82}
    )
    outcome = await kit.photo(RED)
    assert outcome.state == "waiting_location"
    (reply,) = outcome.replies
    assert "垃圾堆放" in reply.text
    assert "82%" in reply.text
    assert "楼道堆放了大量垃圾袋" in reply.text
    assert "位置" in reply.text
    assert outcome.order is None

    # the VLM saw the photo and the catalog
    (request,) = fake_vlm.requests
    assert request.image_count == 1
    assert any("消防通道堵塞" in text and "漏水" in text for text in request.texts)

    session = await kit.session()
    (stored,) = kit.stored_media()
    assert session.slots.image_key == stored.relative_to(kit.media_root).as_posix()
    assert session.slots.image_mime == "image/png"
    assert (session.slots.alarm_type, session.slots.confidence) == ("垃圾堆放", 0.82)
    (user_message,) = session.history.turns[0][:1]
    (image,) = user_message.images
    assert image == ImagePart(session.slots.image_key, "image/png", len(RED), 64, 48)

    outcome = await kit.text("  3号楼东侧楼梯间 ")
    assert outcome.state == "waiting_confirm"
    summary = outcome.replies[0].text
    for expected in ("垃圾堆放", "3号楼东侧楼梯间", "楼道堆放了大量垃圾袋", "确认", "取消", "类型"):
        assert expected in summary

    outcome = await kit.text("确认")
    assert outcome.state == "idle"
    order = outcome.order
    assert order is not None
    assert order.number in outcome.replies[0].text
    assert (order.status, order.reporter, order.assignee) == ("open", USER, None)
    assert (order.alarm_type, order.location) == ("垃圾堆放", "3号楼东侧楼梯间")
    assert order.description == "楼道堆放了大量垃圾袋。"
    assert order.image_key == session.slots.image_key
    assert await kit.orders.get(order.number) == order

    session = await kit.session()
    assert session.slots.image_key == ""
    assert [m.role for turn in session.history.turns for m in turn] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert session.history.turns[-1][1].text == outcome.replies[0].text


async def test_a_location_event_is_the_location(kit: Kit) -> None:
    await kit.photo()
    outcome = await kit.location(31.23, 121.47, "A区 2号门")
    assert outcome.state == "waiting_confirm"
    assert "A区 2号门" in outcome.replies[0].text
    session = await kit.session()
    assert session.slots.location == "A区 2号门"
    assert session.history.turns[-1][0].content == (TextPart("[位置] A区 2号门 (31.23,121.47)"),)


async def test_a_location_event_without_a_label_keeps_the_coordinates(kit: Kit) -> None:
    await kit.photo()
    outcome = await kit.location(31.2, 121.4)
    assert outcome.state == "waiting_confirm"
    assert (await kit.session()).slots.location == "31.2,121.4"
    order = (await kit.text("ok")).order
    assert order is not None
    assert order.location == "31.2,121.4"


async def test_location_x_in_waiting_location_takes_what_follows(kit: Kit) -> None:
    await kit.photo()
    outcome = await kit.text("位置 地下车库B2")
    assert outcome.state == "waiting_confirm"
    assert (await kit.session()).slots.location == "地下车库B2"


async def test_a_second_photo_while_waiting_for_the_location_replaces_the_first(
    kit: Kit, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_json({"alarm_type": "漏水", "description": "天花板滴水。", "confidence": 0.7})
    fake_vlm.enqueue_json(
        {"alarm_type": "违规停车", "description": "车辆堵住出口。", "confidence": 0.95}
    )
    await kit.photo(RED)
    first_key = (await kit.session()).slots.image_key

    outcome = await kit.photo(BLUE)
    assert outcome.state == "waiting_location"
    assert "替换" in outcome.replies[0].text
    assert "违规停车" in outcome.replies[0].text
    assert len(fake_vlm.requests) == 2
    session = await kit.session()
    assert session.slots.image_key not in ("", first_key)
    assert (session.slots.alarm_type, session.slots.analysis) == ("违规停车", "车辆堵住出口。")
    assert len(kit.stored_media()) == 2  # the first photo is kept in the store

    await kit.text("东门")
    order = (await kit.text("确认")).order
    assert order is not None
    assert (order.image_key, order.alarm_type) == (session.slots.image_key, "违规停车")


async def test_a_second_photo_at_confirmation_replaces_it_and_keeps_the_location(
    kit: Kit, fake_vlm: FakeVLM
) -> None:
    await kit.reach("waiting_confirm")
    fake_vlm.enqueue_json({"alarm_type": "漏水", "description": "管道漏水。", "confidence": 0.6})
    outcome = await kit.photo(jpeg_bytes(), mime="image/jpeg")
    assert outcome.state == "waiting_confirm"
    assert "漏水" in outcome.replies[-1].text
    assert "3号楼东侧楼梯间" in outcome.replies[-1].text
    session = await kit.session()
    assert (session.slots.alarm_type, session.slots.image_mime) == ("漏水", "image/jpeg")


@pytest.mark.parametrize(("answer", "expected"), [("类型 3", "垃圾堆放"), ("type 漏水", "漏水")])
async def test_the_type_is_corrected_by_number_or_name(
    kit: Kit, answer: str, expected: str
) -> None:
    await kit.reach("waiting_confirm")
    outcome = await kit.text(answer)
    assert outcome.state == "waiting_confirm"
    assert expected in outcome.replies[0].text
    assert f"：{expected}" in outcome.replies[-1].text  # the summary again
    order = (await kit.text("yes")).order
    assert order is not None
    assert order.alarm_type == expected


@pytest.mark.parametrize("answer", ["类型 地震", "类型 9", "类型 0", "类型"])
async def test_an_unknown_type_lists_the_catalog_and_changes_nothing(kit: Kit, answer: str) -> None:
    await kit.reach("waiting_confirm")
    before = (await kit.session()).slots.alarm_type
    outcome = await kit.text(answer)
    assert outcome.state == "waiting_confirm"
    (reply,) = outcome.replies
    assert "1. 消防通道堵塞" in reply.text
    assert "8. 其他" in reply.text
    assert (await kit.session()).slots.alarm_type == before


async def test_the_type_can_be_corrected_before_the_location(kit: Kit) -> None:
    await kit.photo()
    outcome = await kit.text("类型 设施损坏")
    assert outcome.state == "waiting_location"
    assert "设施损坏" in outcome.replies[0].text
    assert (await kit.session()).slots.alarm_type == "设施损坏"


async def test_the_location_is_corrected_at_confirmation(kit: Kit) -> None:
    await kit.reach("waiting_confirm")
    outcome = await kit.text("位置 5号楼屋顶")
    assert outcome.state == "waiting_confirm"
    assert "5号楼屋顶" in outcome.replies[-1].text
    outcome = await kit.location(30.0, 120.0, "北门岗亭")
    assert outcome.state == "waiting_confirm"
    order = (await kit.text("提交")).order
    assert order is not None
    assert order.location == "北门岗亭"


@pytest.mark.parametrize("answer", ["确认。", "OK!", " yes ", "好的", "Y", "是的！"])
async def test_yes_in_any_spelling_submits(kit: Kit, answer: str) -> None:
    await kit.reach("waiting_confirm")
    outcome = await kit.text(answer)
    assert outcome.state == "idle"
    assert outcome.order is not None


@pytest.mark.parametrize("answer", ["不用了", "否", "No.", "n"])
async def test_no_at_confirmation_cancels(kit: Kit, answer: str) -> None:
    await kit.reach("waiting_confirm")
    outcome = await kit.text(answer)
    assert outcome.state == "idle"
    assert outcome.order is None
    assert "取消" in outcome.replies[0].text
    assert await kit.orders.list() == []
    assert (await kit.session()).slots.image_key == ""


async def test_anything_else_at_confirmation_repeats_the_summary(kit: Kit) -> None:
    await kit.reach("waiting_confirm")
    outcome = await kit.text("这个要多久处理？")
    assert outcome.state == "waiting_confirm"
    assert "没有看懂" in outcome.replies[0].text
    assert "3号楼东侧楼梯间" in outcome.replies[1].text


async def test_yes_before_a_location_asks_for_the_location(kit: Kit) -> None:
    await kit.photo()
    outcome = await kit.text("确认")
    assert outcome.state == "waiting_location"
    assert "位置" in outcome.replies[0].text
    assert (await kit.session()).slots.location == ""


@pytest.mark.parametrize(
    "failure",
    ["429", "500", "garbage"],
)
async def test_a_failing_vlm_means_manual_mode_and_keeps_the_photo(
    kit: Kit, fake_vlm: FakeVLM, failure: str
) -> None:
    for _ in range(2):  # the adapter tries twice (one retry)
        if failure == "garbage":
            fake_vlm.enqueue_content("抱歉，我无法判断。")
        else:
            fake_vlm.enqueue_error(int(failure))
    outcome = await kit.photo(RED)
    assert outcome.state == "waiting_location"
    assert UNCLASSIFIED in outcome.replies[0].text
    assert "暂时不可用" in outcome.replies[0].text
    session = await kit.session()
    (stored,) = kit.stored_media()
    assert session.slots.image_key == stored.relative_to(kit.media_root).as_posix()
    assert (session.slots.alarm_type, session.slots.analysis) == (UNCLASSIFIED, "")
    assert session.slots.confidence is None

    await kit.text("B区车库入口")
    summary = (await kit.text("类型 4")).replies[-1].text
    assert "违规停车" in summary
    order = (await kit.text("确认")).order
    assert order is not None
    assert (order.alarm_type, order.description) == ("违规停车", "")
    assert order.image_key == session.slots.image_key


async def test_fenced_json_from_the_vlm_is_understood(kit: Kit, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_content(
        '好的，结果如下：\n```json\n{"alarm_type": "漏水", "description": "墙角渗水", '
        '"confidence": 0.77}\n```'
    )
    outcome = await kit.photo()
    assert "漏水" in outcome.replies[0].text
    assert "墙角渗水" in outcome.replies[0].text
    assert (await kit.session()).slots.alarm_type == "漏水"


async def test_a_type_outside_the_catalog_becomes_other(kit: Kit, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_json({"alarm_type": "外星人入侵", "description": "看不清", "confidence": 0.3})
    outcome = await kit.photo()
    assert outcome.replies[0].text.startswith("识别结果：其他")
    assert (await kit.session()).slots.alarm_type == "其他"


async def test_manual_mode_reports_unclassified(manual: Kit) -> None:
    outcome = await manual.photo()
    assert outcome.state == "waiting_location"
    assert "未启用自动识别" in outcome.replies[0].text
    await manual.text("食堂后门")
    outcome = await manual.text("确认")
    assert outcome.order is not None
    assert (outcome.order.alarm_type, outcome.order.description) == (UNCLASSIFIED, "")


async def test_the_orders_store_failing_at_confirmation_changes_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    flaky: list[FlakyOrders] = []

    def wrap(inner: SqlOrderRepository) -> FlakyOrders:
        flaky.append(FlakyOrders(inner))
        return flaky[0]

    async with dialogue(tmp_path, clock, wrap_orders=wrap) as kit:
        await kit.reach("waiting_confirm")
        before = await kit.session()
        flaky[0].failing.add("create")
        with pytest.raises(StoreUnavailable):
            await kit.text("确认")
        after = await kit.session()
        assert after.state == "waiting_confirm"
        assert after.version == before.version
        assert after.slots == before.slots
        assert after.history.turns == before.history.turns
        assert await kit.orders.list() == []

        flaky[0].failing.clear()
        outcome = await kit.text("确认")
        assert outcome.order is not None
        assert len(await kit.orders.list()) == 1


async def test_the_whole_report_in_english(
    tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM
) -> None:
    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm), language="en") as kit:
        outcome = await kit.photo()
        assert outcome.replies[0].text.startswith("Recognised: 消防通道堵塞 (confidence 90%)")
        assert "Where is it?" in outcome.replies[0].text
        outcome = await kit.text("Building 3, east stairwell")
        assert outcome.replies[0].text.startswith("Please confirm the report:")
        outcome = await kit.text("type 2")
        assert outcome.replies[0].text == 'The type is now "消防设施损坏".'
        outcome = await kit.text("OK!")
        assert outcome.order is not None
        assert outcome.replies[0].text.startswith(f"Reported! Work order: {outcome.order.number}")
        analysis_request = fake_vlm.requests[0]
        assert any("Look at this site photo" in text for text in analysis_request.texts)


@pytest.mark.parametrize(("language", "yes"), [("en", "确认"), ("zh-CN", "yes")])
async def test_commands_work_whatever_the_reply_language(
    tmp_path: Path, clock: FakeClock, language: str, yes: str
) -> None:
    async with dialogue(tmp_path, clock, language=language) as kit:
        await kit.reach("waiting_confirm")
        assert (await kit.text(yes)).order is not None


async def test_a_double_tapped_yes_files_one_order(kit: Kit) -> None:
    await kit.reach("waiting_confirm")
    first, second = await asyncio.gather(kit.text("确认"), kit.text("确认"))
    assert first.order is not None
    assert second.order is None  # handled after the first, from idle
    assert second.state == "idle"
    assert len(await kit.orders.list()) == 1


async def test_in_manual_mode_a_replaced_photo_keeps_the_corrected_type(manual: Kit) -> None:
    await manual.reach("waiting_confirm")
    await manual.text("类型 漏水")
    outcome = await manual.photo(BLUE)
    assert outcome.state == "waiting_confirm"
    assert "「漏水」" in outcome.replies[0].text
    session = await manual.session()
    assert (session.slots.alarm_type, session.slots.location) == ("漏水", "3号楼东侧楼梯间")
    assert session.slots.image_key.endswith(".png")
    order = (await manual.text("确认")).order
    assert order is not None
    assert (order.alarm_type, order.image_key) == ("漏水", session.slots.image_key)


async def test_no_while_waiting_for_the_location_cancels(kit: Kit) -> None:
    await kit.photo()
    outcome = await kit.text("不")
    assert outcome.state == "idle"
    assert "已取消本次上报" in outcome.replies[0].text
    assert (await kit.session()).slots.image_key == ""
