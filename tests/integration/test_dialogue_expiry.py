"""Sessions expire after 10 minutes without a message; a pending report or close says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.session.model import State
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock
from tests.integration.dialogue_kit import TTL_SECONDS, Kit, dialogue

ZH = load_texts("zh-CN")
REPORT_EXPIRED = ZH("expired.report", minutes=10)


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock) as built:
        yield built


@pytest.mark.parametrize("state", ["waiting_location", "waiting_confirm"])
async def test_a_report_that_expired_is_announced_first_then_the_message_is_handled_from_idle(
    kit: Kit, state: State
) -> None:
    await kit.reach(state)
    kit.clock.advance(TTL_SECONDS + 1)
    outcome = await kit.text("确认")
    assert outcome.state == "idle"
    assert outcome.order is None  # a late yes confirms nothing
    assert [r.text for r in outcome.replies] == [REPORT_EXPIRED, ZH("help.idle")]
    assert await kit.orders.list() == []
    session = await kit.session()
    assert session.slots.image_key == ""
    assert [m.text for m in session.history.messages()] == ["确认", REPORT_EXPIRED, ZH("help.idle")]


async def test_a_close_that_expired_names_the_order(kit: Kit) -> None:
    order = await kit.reach("waiting_close_photo")
    assert order is not None
    kit.clock.advance(TTL_SECONDS)
    outcome = await kit.photo()
    assert outcome.replies[0].text == ZH("expired.close", number=order.number, minutes=10)
    # the photo is then a new report, from idle
    assert outcome.state == "waiting_location"
    assert len(outcome.replies) == 2
    assert (await kit.orders.get(order.number)).status == "open"


async def test_the_notice_is_said_once(kit: Kit) -> None:
    await kit.reach("waiting_location")
    kit.clock.advance(TTL_SECONDS + 5)
    first = await kit.text("帮助")
    second = await kit.text("帮助")
    assert first.replies[0].text == REPORT_EXPIRED
    assert [r.text for r in second.replies] == [ZH("help.idle")]


async def test_activity_keeps_a_report_alive(kit: Kit) -> None:
    await kit.reach("waiting_location")
    kit.clock.advance(TTL_SECONDS - 1)
    await kit.text("帮助")
    kit.clock.advance(TTL_SECONDS - 1)
    outcome = await kit.text("3号楼")
    assert outcome.state == "waiting_confirm"
    assert REPORT_EXPIRED not in [r.text for r in outcome.replies]


async def test_an_idle_session_expires_silently(kit: Kit) -> None:
    await kit.text("你好")
    kit.clock.advance(TTL_SECONDS * 3)
    outcome = await kit.text("帮助")
    assert [r.text for r in outcome.replies] == [ZH("help.idle")]


async def test_bad_input_after_expiry_still_gets_the_notice_once(kit: Kit) -> None:
    await kit.reach("waiting_confirm")
    kit.clock.advance(TTL_SECONDS + 1)
    outcome = await kit.photo(b"definitely not an image")
    assert [r.text for r in outcome.replies] == [REPORT_EXPIRED, ZH("input.image_unsupported")]
    assert outcome.state == "idle"
    assert len(kit.stored_media()) == 1  # the earlier photo stays; nothing new is stored
    outcome = await kit.text("帮助")
    assert [r.text for r in outcome.replies] == [ZH("help.idle")]


async def test_the_notice_in_english(tmp_path: Path, clock: FakeClock) -> None:
    async with dialogue(tmp_path, clock, language="en") as kit:
        await kit.reach("waiting_location")
        clock.advance(TTL_SECONDS + 1)
        outcome = await kit.text("hello")
        assert outcome.replies[0].text == (
            "Your pending report was cancelled because nothing happened for 10 minutes."
        )
