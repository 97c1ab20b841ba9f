"""The global commands (cancel, help, my orders) in every state, in both languages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.orders.base import NewReport
from snapreport.session.model import STATES, Slots, State
from snapreport.workflow.texts import Texts, load_texts
from tests.harness.clock import FakeClock
from tests.integration.dialogue_kit import USER, Kit, dialogue

LANGUAGES = ("zh-CN", "en")
CANCEL = ("取消", "退出", "cancel", "Cancel.")
HELP = ("帮助", "help", "HELP!")
MY_ORDERS = ("我的工单", "my orders")


@pytest.fixture(params=LANGUAGES)
async def kit(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, language=request.param) as built:
        yield built


def texts_of(kit: Kit) -> Texts:
    return load_texts(kit.assistant.language)


@pytest.mark.parametrize("word", CANCEL)
@pytest.mark.parametrize("state", STATES)
async def test_cancel_in_every_state_goes_idle_and_says_so(
    kit: Kit, state: State, word: str
) -> None:
    order = await kit.reach(state)
    outcome = await kit.text(word)
    assert outcome.state == "idle"
    assert outcome.order is None
    texts = texts_of(kit)
    expected = {
        "idle": texts("cancel.nothing"),
        "waiting_location": texts("cancel.report"),
        "waiting_confirm": texts("cancel.report"),
        "waiting_close_photo": texts("cancel.close", number=order.number if order else ""),
    }[state]
    assert [r.text for r in outcome.replies] == [expected]
    session = await kit.session()
    assert (session.state, session.slots) == ("idle", Slots())
    open_orders = await kit.orders.open_orders_for(USER)
    assert [o.number for o in open_orders] == ([order.number] if order else [])


@pytest.mark.parametrize("word", HELP)
@pytest.mark.parametrize("state", STATES)
async def test_help_in_every_state_explains_that_state(kit: Kit, state: State, word: str) -> None:
    order = await kit.reach(state)
    before = await kit.session()
    outcome = await kit.text(word)
    assert outcome.state == state
    number = order.number if order else ""
    assert [r.text for r in outcome.replies] == [texts_of(kit)(f"help.{state}", number=number)]
    after = await kit.session()
    assert (after.state, after.slots) == (state, before.slots)


async def test_help_differs_per_state() -> None:
    texts = load_texts()
    assert len({texts(f"help.{state}", number="WO-1") for state in STATES}) == len(STATES)


@pytest.mark.parametrize("word", MY_ORDERS)
@pytest.mark.parametrize("state", STATES)
async def test_my_orders_in_every_state_lists_reported_and_assigned(
    kit: Kit, state: State, word: str
) -> None:
    reported = await kit.report()
    assigned = await kit.orders.create(
        NewReport(
            reporter="dispatcher",
            alarm_type="漏水",
            location="B区地下室",
            description="",
            image_key=None,
            assignee=USER,
        )
    )
    someone_elses = await kit.report("lisi")
    await kit.reach(state)
    before = await kit.session()
    outcome = await kit.text(word)
    assert outcome.state == state
    (reply,) = outcome.replies
    texts = texts_of(kit)
    assert reply.text.startswith(
        texts("orders.header", count=len(await kit.orders.open_orders_for(USER)))
    )
    assert reported.number in reply.text
    assert f"{assigned.number}  漏水 · B区地下室" in reply.text
    assert texts("orders.role_assignee") in reply.text
    assert texts("orders.role_reporter") in reply.text
    assert someone_elses.number not in reply.text
    after = await kit.session()
    assert (after.state, after.slots) == (state, before.slots)


async def test_my_orders_without_any(kit: Kit) -> None:
    outcome = await kit.text("我的工单")
    assert [r.text for r in outcome.replies] == [texts_of(kit)("orders.none")]


async def test_closed_orders_are_not_listed(kit: Kit) -> None:
    order = await kit.report()
    await kit.text(f"结单 {order.number}")
    await kit.photo()
    outcome = await kit.text("my orders")
    assert outcome.replies[0].text == texts_of(kit)("orders.none")
