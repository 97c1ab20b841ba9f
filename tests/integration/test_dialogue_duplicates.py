"""Duplicate reports through the HTTP API with the fake model, in both languages.

At confirmation, an open or accepted order of the same type within 50 m (both with
coordinates) or at the same normalised location text, filed in the last 7 days, is offered:
``追加`` / ``add`` merges the report into it (photo kept, reporter in ``also_reported_by``,
``merged_report`` logged, no new order), ``仍然上报`` / ``file anyway`` files a new one. A merge
is keyed by its message like a create; merged reporters are told when the order is accepted
and closed, and see it in ``我的工单``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapreport.errors import StoreUnavailable
from snapreport.orders.base import MessageKey
from snapreport.orders.repository import SqlOrderRepository
from snapreport.workflow.events import Origin, TextEvent
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock
from tests.harness.fake_vlm import FakeVLM
from tests.integration.dialogue_kit import FlakyOrders, Kit, dialogue, vlm_vision
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    b64,
    bearer,
    make_settings,
    png_bytes,
    running,
)

LANGUAGES = ("zh-CN", "en")
WORDS = {
    "zh-CN": {"yes": "确认", "add": "追加", "anyway": "仍然上报", "mine": "我的工单"},
    "en": {"yes": "yes", "add": "add", "anyway": "file anyway", "mine": "my orders"},
}
API = bearer(API_TOKEN)
ADMIN = bearer(ADMIN_TOKEN)
WAIT_SECONDS = 20.0


@pytest.fixture
async def app(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM
) -> AsyncIterator[Running]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    settings = make_settings(
        tmp_path,
        language=getattr(request, "param", "zh-CN"),
        dispatch={"rules_file": rules},
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        vision={
            "base_url": fake_vlm.url,
            "api_key": fake_vlm.api_key,
            "model": fake_vlm.model,
            "max_retries": 0,
        },
    )
    async with running(settings, clock=clock) as r:
        yield r


class Chat:
    """One client's messages through ``POST /api/v1/messages``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.sent = 0

    async def send(self, user: str, message_id: str | None = None, **body: Any) -> dict[str, Any]:
        self.sent += 1
        payload = {"user_id": user, "message_id": message_id or f"{user}-{self.sent}", **body}
        answer = await self.client.post("/api/v1/messages", json=payload, headers=API)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def photo(self, user: str, color: tuple[int, int, int] = (200, 30, 30)) -> dict[str, Any]:
        image = {"data": b64(png_bytes(color=color)), "mime": "image/png"}
        return await self.send(user, image=image)

    async def text(self, user: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        return await self.send(user, message_id, text=text)

    async def pending(
        self, user: str, *, place: str | None = None, point: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """A report waiting for its confirmation, at ``place`` (text) or ``point``."""
        await self.photo(user, color=(len(user) * 40 % 256, self.sent * 7 % 256, 90))
        if point is not None:
            latitude, longitude = point
            location = {"latitude": latitude, "longitude": longitude, "label": place or ""}
            answer = await self.send(user, location=location)
        else:
            answer = await self.text(user, place or "")
        assert answer["state"] == "waiting_confirm", answer
        return answer

    async def filed(self, user: str, yes: str, **where: Any) -> dict[str, Any]:
        await self.pending(user, **where)
        answer = await self.text(user, yes)
        assert answer["state"] == "idle", answer
        order: dict[str, Any] = answer["order"]
        return order


def reply(answer: dict[str, Any]) -> str:
    return "\n".join(r["text"] for r in answer["replies"])


async def events(app: Running, number: str) -> list[str]:
    shown = await app.client.get(f"/api/v1/orders/{number}", headers=ADMIN)
    assert shown.status_code == 200, shown.text
    return [e["kind"] for e in shown.json()["events"]]


async def order_count(app: Running) -> int:
    listed = await app.client.get("/api/v1/orders", headers=ADMIN)
    return len(listed.json()["orders"])


@pytest.mark.parametrize("app", LANGUAGES, indirect=True)
async def test_the_same_place_typed_differently_is_offered_and_added_once(app: Running) -> None:
    language = app.ctx.settings.language
    words, say = WORDS[language], load_texts(language)
    chat = Chat(app.client)
    first = await chat.filed("u1", words["yes"], place="3号楼 东侧楼梯间")

    # full-width digits, other spaces and a full stop fold to the same place
    await chat.pending("u2", place="３号楼东侧楼梯间。")
    offered = await chat.text("u2", words["yes"])
    assert offered["state"] == "waiting_confirm"
    assert offered["order"] is None
    assert first["number"] in reply(offered)
    assert reply(offered).startswith(say("duplicate.offer", **_offer(first)).split("\n")[0])

    merged = await chat.text("u2", words["add"], message_id="u2-add")
    assert merged["state"] == "idle"
    order = merged["order"]
    assert order["number"] == first["number"]
    assert order["also_reported_by"] == ["u2"]
    assert order["image_keys"][0] == order["image_key"] == first["image_key"]
    assert len(order["image_keys"]) == 2  # u2's photo is kept on the order
    assert first["number"] in reply(merged)
    # the same message again: the first answer, and still one merge
    again = await chat.text("u2", words["add"], message_id="u2-add")
    assert again["duplicate"] is True
    assert again["order"]["number"] == first["number"]
    assert (await events(app, first["number"])).count("merged_report") == 1
    assert await order_count(app) == 1


@pytest.mark.parametrize("app", LANGUAGES, indirect=True)
async def test_the_offer_carries_its_answers_as_choices_a_number_or_the_words_pick(
    app: Running,
) -> None:
    language = app.ctx.settings.language
    words, say = WORDS[language], load_texts(language)
    answers = [say("duplicate.add"), say("duplicate.file_anyway")]
    assert answers == [words["add"], words["anyway"]]  # the words the dialogue understands
    chat = Chat(app.client)
    first = await chat.filed("u1", words["yes"], place="A区北门")

    # the offer lists its answers, numbered, and the answer offers them as choices
    await chat.pending("u2", place="A区北门")
    offered = await chat.text("u2", words["yes"])
    assert offered["choices"] == answers
    assert offered["language"] == language
    assert reply(offered).endswith(f"\n1. {answers[0]}\n2. {answers[1]}")
    # help keeps them (with how to answer); a yes again asks which, with the same choices
    helped = await chat.text("u2", "帮助")
    assert say("choice.hint", count=2) in reply(helped)
    assert helped["choices"] == answers  # still offered: the buttons stay
    asked = await chat.text("u2", words["yes"])
    assert (asked["state"], asked["choices"]) == ("waiting_confirm", answers)
    # "1" (a button sends its number) adds the report to the order
    merged = await chat.text("u2", "１")
    assert (merged["state"], merged["choices"]) == ("idle", [])
    assert merged["order"]["number"] == first["number"]
    assert merged["order"]["also_reported_by"] == ["u2"]

    # "2" files a new order
    await chat.pending("u3", place="A区北门")
    assert (await chat.text("u3", words["yes"]))["choices"] == answers
    filed = await chat.text("u3", "2")
    assert filed["state"] == "idle"
    assert filed["order"]["number"] != first["number"]
    assert filed["order"]["also_reported_by"] == []

    # the choice's own text (the button's words) picks it too; a number out of range does not
    await chat.pending("u4", place="A区北门")
    offered = await chat.text("u4", words["yes"])
    again = await chat.text("u4", "3")
    assert (again["state"], again["order"]) == ("waiting_confirm", None)
    assert (await chat.text("u4", words["yes"]))["choices"] == answers
    merged = await chat.text("u4", offered["choices"][0])
    assert merged["order"]["number"] == filed["order"]["number"]  # the newest of the two
    assert merged["order"]["also_reported_by"] == ["u4"]
    assert await order_count(app) == 2
    # a number with no question pending is no answer: "1" at a plain confirmation is not a yes
    await chat.pending("u5", place="B区南门")
    plain = await chat.text("u5", "1")
    assert (plain["state"], plain["order"], plain["choices"]) == ("waiting_confirm", None, [])


def _offer(order: dict[str, Any]) -> dict[str, str]:
    return {
        "number": order["number"],
        "alarm_type": order["alarm_type"],
        "location": order["location"],
        "created": "",
    }


@pytest.mark.parametrize("app", LANGUAGES, indirect=True)
async def test_coordinates_within_50_m_are_offered_and_farther_ones_are_not(app: Running) -> None:
    words = WORDS[app.ctx.settings.language]
    chat = Chat(app.client)
    first = await chat.filed("u1", words["yes"], place="A区北门", point=(31.2304, 121.4737))
    assert (first["latitude"], first["longitude"]) == (31.2304, 121.4737)

    # about 33 m north, under another name: the same problem
    await chat.pending("u2", place="北门岗亭旁", point=(31.2307, 121.4737))
    offered = await chat.text("u2", words["yes"])
    assert offered["state"] == "waiting_confirm"
    assert first["number"] in reply(offered)
    # the user files it anyway: a new order, with its own coordinates
    filed = await chat.text("u2", words["anyway"])
    assert filed["state"] == "idle"
    assert filed["order"]["number"] != first["number"]
    assert filed["order"]["latitude"] == 31.2307
    assert filed["order"]["also_reported_by"] == []

    # about 90 m away: not the same place, filed at once
    far = await chat.filed("u3", words["yes"], place="C区", point=(31.2312, 121.4737))
    assert far["number"] not in (first["number"], filed["order"]["number"])
    assert await order_count(app) == 3


async def test_another_type_a_closed_order_or_an_old_one_is_not_offered(
    app: Running, clock: FakeClock
) -> None:
    chat = Chat(app.client)
    old = await chat.filed("u1", "确认", place="B区车库入口")
    clock.advance(8 * 24 * 3600)  # 8 days later: too old to be the same problem
    second = await chat.filed("u2", "确认", place="B区车库入口")
    assert second["number"] != old["number"]

    # the same place, another type (corrected at confirmation)
    await chat.pending("u3", place="B区车库入口")
    typed = await chat.text("u3", "类型 漏水")
    assert typed["state"] == "waiting_confirm"
    other = await chat.text("u3", "确认")
    assert other["state"] == "idle"
    assert other["order"]["alarm_type"] == "漏水"

    # a closed order is not offered either
    closed = await app.client.post(
        f"/api/v1/orders/{second['number']}/close", json={"note": "清理了"}, headers=ADMIN
    )
    assert closed.status_code == 200, closed.text
    assert (await chat.filed("u4", "确认", place="B区车库入口"))["number"] != second["number"]


async def test_a_correction_after_the_offer_checks_again(app: Running) -> None:
    chat = Chat(app.client)
    first = await chat.filed("u1", "确认", place="A区北门")
    await chat.pending("u2", place="A区北门")
    assert first["number"] in reply(await chat.text("u2", "确认"))
    # "yes" again asks which of the two is meant
    asked = await chat.text("u2", "确认")
    assert (asked["state"], asked["order"]) == ("waiting_confirm", None)
    assert "仍然上报" in reply(asked)
    moved = await chat.text("u2", "位置 A区南门")
    assert moved["state"] == "waiting_confirm"
    # the offer was for the old place: nothing to add to now, and a yes files at once
    nothing = await chat.text("u2", "追加")
    assert nothing["state"] == "waiting_confirm"
    assert nothing["order"] is None
    filed = await chat.text("u2", "确认")
    assert filed["state"] == "idle"
    assert filed["order"]["location"] == "A区南门"


async def test_an_order_closed_after_the_offer_is_not_added_to(app: Running) -> None:
    chat = Chat(app.client)
    first = await chat.filed("u1", "确认", place="A区北门")
    await chat.pending("u2", place="A区北门")
    await chat.text("u2", "确认")
    closed = await app.client.post(
        f"/api/v1/orders/{first['number']}/close", json={"note": "好了"}, headers=ADMIN
    )
    assert closed.status_code == 200, closed.text
    gone = await chat.text("u2", "追加")
    assert gone["state"] == "waiting_confirm"
    assert gone["order"] is None
    assert first["number"] in reply(gone)
    assert "merged_report" not in await events(app, first["number"])
    filed = await chat.text("u2", "确认")
    assert filed["order"]["number"] != first["number"]


async def notifications(client: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/users/{user}/notifications", headers=API)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["notifications"]
    return found


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not await check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("app", LANGUAGES, indirect=True)
async def test_every_reporter_of_a_merged_order_is_told_and_sees_it(
    app: Running, fake_vlm: FakeVLM
) -> None:
    words = WORDS[app.ctx.settings.language]
    say = load_texts(app.ctx.settings.language)
    chat = Chat(app.client)
    first = await chat.filed("u1", words["yes"], place="3号楼东侧楼梯间")
    number = first["number"]
    for user in ("u2", "u3"):
        await chat.pending(user, place="3号楼东侧楼梯间")
        assert number in reply(await chat.text(user, words["yes"]))
        assert (await chat.text(user, words["add"]))["order"]["number"] == number

    mine = await chat.text("u2", words["mine"])
    assert number in reply(mine)
    assert say("orders.role_merged") in reply(mine)
    # every photo of the order is the merged reporters' to see, and nobody else's
    shown = await app.client.get(f"/api/v1/orders/{number}", headers=ADMIN)
    keys = shown.json()["image_keys"]
    assert len(keys) == 3
    for key in keys:
        seen = await app.client.get(f"/api/v1/users/u3/media/{key}", headers=API)
        assert seen.status_code == 200, seen.text
        unseen = await app.client.get(f"/api/v1/users/u9/media/{key}", headers=API)
        assert unseen.status_code == 404

    assert number in reply(await chat.text("lisi", f"接单 {number}"))
    await chat.text("lisi", f"结单 {number}")
    closed = await chat.photo("lisi", color=(20, 200, 20))
    assert closed["order"]["status"] == "closed"
    # the close photo was compared with the order's photos: the first three and the close
    verification = fake_vlm.requests[-1]
    assert verification.image_count == 4

    async def everyone_told() -> bool:
        for user in ("u1", "u2", "u3"):
            kinds = {n["type"] for n in await notifications(app.client, user)}
            if not {"order.accepted", "order.closed"} <= kinds:
                return False
        return True

    await until(everyone_told)
    for user in ("u1", "u2", "u3"):
        told = [n for n in await notifications(app.client, user) if n["order_number"] == number]
        assert sorted(n["type"] for n in told) == ["order.accepted", "order.closed"]
    assert await notifications(app.client, "u4") == []


# -- exactly once: a merge whose session could not be saved, sent again ----------------------


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm)) as built:
        yield built


async def test_a_retried_add_merges_once(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await kit.report("u1", location="A区北门")
    await kit.photo(user="u2")
    await kit.text("A区北门", "u2")
    assert first.number in (await kit.text("确认", "u2")).replies[0].text

    store = kit.engine.store
    commit = store.commit
    failures = [1]

    async def failing(*args: Any, **kwargs: Any) -> None:
        if failures[0] > 0:
            failures[0] -= 1
            raise StoreUnavailable("session store: database is locked")
        await commit(*args, **kwargs)

    monkeypatch.setattr(store, "commit", failing)
    origin = Origin("api", "u2-add")
    with pytest.raises(StoreUnavailable):
        await kit.assistant.handle("u2", TextEvent("追加"), origin)
    assert await kit.state("u2") == "waiting_confirm"  # the turn was not saved
    retried = await kit.assistant.handle("u2", TextEvent("追加"), origin)

    assert retried.state == "idle"
    assert retried.order is not None
    assert retried.order.number == first.number
    assert retried.order.also_reported_by == ("u2",)
    assert len(retried.order.image_keys) == 2
    kinds = [e.kind for e in await kit.events(first.number)]
    assert kinds.count("merged_report") == 1
    assert len(await kit.orders.list()) == 1
    assert await kit.orders.written_by(MessageKey("api", "u2", "u2-add")) == (
        "merge",
        retried.order,
    )


async def test_the_orders_store_away_at_add_changes_nothing_and_a_retry_merges(
    tmp_path: Path, clock: FakeClock
) -> None:
    flaky: list[FlakyOrders] = []

    def wrap(inner: SqlOrderRepository) -> FlakyOrders:
        flaky.append(FlakyOrders(inner))
        return flaky[0]

    async with dialogue(tmp_path, clock, wrap_orders=wrap) as kit:
        first = await kit.report("u1", location="A区北门")
        await kit.photo(user="u2")
        await kit.text("A区北门", "u2")
        await kit.text("确认", "u2")
        before = await kit.session("u2")
        flaky[0].failing.add("merge")
        with pytest.raises(StoreUnavailable):
            await kit.text("追加", "u2")
        after = await kit.session("u2")
        assert (after.state, after.slots) == ("waiting_confirm", before.slots)
        assert (await kit.orders.get(first.number)).also_reported_by == ()
        flaky[0].failing.clear()  # the database is back: the same words merge
        merged = await kit.text("追加", "u2")
        assert merged.order is not None
        assert merged.order.also_reported_by == ("u2",)
