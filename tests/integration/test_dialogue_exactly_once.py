"""A message whose turn wrote its order and then failed to save the session, sent again.

The session store refuses one commit (as SQLite does with ``database is locked`` or Redis when
it is away) after the orders store was written. With its origin, the retried message answers
with the order it wrote, gives the same reply and leaves the session idle; without one it is
handled again (at least once: a retried confirmation is then offered the order it filed as a
duplicate). The live-server versions of these faults are in
``test_exactly_once_faults.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from snapreport.errors import StoreUnavailable
from snapreport.workflow.events import Event, ImageEvent, Origin, Outcome, TextEvent
from tests.harness.clock import FakeClock
from tests.integration.dialogue_kit import USER, Kit, dialogue, png_bytes


class FailingCommits:
    """Makes the next ``count`` session commits fail after the turn did its work."""

    def __init__(self, kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        store = kit.engine.store
        commit: Callable[..., Awaitable[None]] = store.commit

        async def failing(*args: Any, **kwargs: Any) -> None:
            if self.count > 0:
                self.count -= 1
                raise StoreUnavailable("session store: database is locked")
            await commit(*args, **kwargs)

        monkeypatch.setattr(store, "commit", failing)


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock) as built:
        yield built


async def _send(kit: Kit, event: Event, message_id: str | None) -> Outcome:
    origin = None if message_id is None else Origin("api", message_id)
    return await kit.assistant.handle(USER, event, origin)


async def _failing_then_retried(
    kit: Kit, commits: FailingCommits, event: Event, message_id: str | None
) -> Outcome:
    commits.count = 1
    with pytest.raises(StoreUnavailable):
        await _send(kit, event, message_id)
    return await _send(kit, event, message_id)


async def test_a_retried_confirmation_answers_with_the_order_it_filed(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = FailingCommits(kit, monkeypatch)
    await kit.reach("waiting_confirm")
    assert await kit.orders.list() == []

    retried = await _failing_then_retried(kit, commits, TextEvent("确认"), "m-confirm")

    [order] = await kit.orders.list()
    assert retried.order == order
    assert retried.state == "idle"
    assert order.number in retried.replies[0].text
    assert await kit.state() == "idle"
    # the reply is the one a first, successful confirmation gives
    await kit.reach("waiting_confirm")
    fresh = await _send(kit, TextEvent("确认"), "m-confirm-2")
    assert fresh.order is not None
    # (at another place, so it is not offered as a duplicate of the first)
    assert retried.replies[0].text == fresh.replies[0].text.replace(
        fresh.order.number, order.number
    ).replace(fresh.order.location, order.location)
    assert len(await kit.orders.list()) == 2


async def test_a_retried_close_photo_answers_with_its_close(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = FailingCommits(kit, monkeypatch)
    order = await kit.report()
    await kit.text(f"结单 {order.number}")
    assert await kit.state() == "waiting_close_photo"
    photo = ImageEvent(png_bytes((10, 200, 10)), "image/png")

    retried = await _failing_then_retried(kit, commits, photo, "m-close")

    assert retried.state == "idle"
    assert retried.order is not None
    assert retried.order.number == order.number
    assert retried.order.status == "closed"
    assert order.number in retried.replies[0].text
    closes = [e for e in await kit.events(order.number) if e.kind == "closed"]
    assert len(closes) == 1
    assert await kit.state() == "idle"


async def test_a_retried_force_close_answers_with_its_close(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = FailingCommits(kit, monkeypatch)
    order = await kit.report()
    await kit.text(f"结单 {order.number}")
    # force close needs a close photo the model refused; in manual mode a photo closes at
    # once, so the refused attempt is set in the session directly
    assert await kit.state() == "waiting_close_photo"
    async with kit.engine.turn(USER) as turn:
        turn.slots.close_attempts = 1

    retried = await _failing_then_retried(kit, commits, TextEvent("强制结单"), "m-force")

    assert retried.state == "idle"
    assert retried.order is not None
    assert retried.order.forced
    closes = [e for e in await kit.events(order.number) if e.kind == "closed"]
    assert len(closes) == 1


async def test_without_a_message_id_a_retried_confirmation_is_offered_what_it_filed(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = FailingCommits(kit, monkeypatch)
    await kit.reach("waiting_confirm")

    retried = await _failing_then_retried(kit, commits, TextEvent("确认"), None)

    # without a key the message is handled again (at least once); the report is still
    # pending, so the duplicate check finds the order the first attempt filed and offers it
    [order] = await kit.orders.list()
    assert retried.state == "waiting_confirm"
    assert retried.order is None
    assert order.number in retried.replies[0].text
    again = await _send(kit, TextEvent("仍然上报"), None)  # the user may still file it twice
    assert again.order is not None
    assert len(await kit.orders.list()) == 2
