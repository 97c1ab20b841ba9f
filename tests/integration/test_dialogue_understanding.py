"""The dialogue understands people, through POST /api/v1/messages: it asks the type when no model
classified the photo, reads free text through the (fake) model as the equivalent words, and
replies in each user's language."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.session.model import SessionCodec, Slots
from tests.harness.clock import FakeClock
from tests.harness.fake_vlm import FakeVLM
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

CATALOG = list(DEFAULT_ALARM_TYPES)
LEAK = "漏水"
PILE = "垃圾堆放"
HOSTILE = {"alarm_type": None, "location": None, "order_number": None, "reply": None}


def vision(fake_vlm: FakeVLM, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": fake_vlm.url,
        "api_key": fake_vlm.api_key,
        "model": fake_vlm.model,
        "max_retries": 0,
        **extra,
    }


class Chat:
    """One app, spoken to as several users."""

    def __init__(self, r: Running, prefix: str = "m") -> None:
        self.r = r
        self.prefix = prefix
        self.count = 0

    async def send(self, user: str = "u1", **body: Any) -> dict[str, Any]:
        self.count += 1
        response = await self.r.client.post(
            "/api/v1/messages",
            json={"user_id": user, "message_id": f"{self.prefix}-{self.count}", **body},
            headers=bearer(API_TOKEN),
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def text(self, text: str, user: str = "u1", **extra: Any) -> dict[str, Any]:
        return await self.send(user, text=text, **extra)

    async def photo(self, user: str = "u1", **extra: Any) -> dict[str, Any]:
        image = {"data": b64(png_bytes()), "mime": "image/png"}
        return await self.send(user, image=image, **extra)

    async def order(self, number: str) -> dict[str, Any]:
        response = await self.r.client.get(f"/api/v1/orders/{number}", headers=bearer(ADMIN_TOKEN))
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    async def file_report(self, user: str, location: str) -> str:
        await self.photo(user)
        await self.text(location, user)
        answer = await self.text("确认", user)
        assert answer["order"] is not None, answer
        number: str = answer["order"]["number"]
        return number


def said(answer: dict[str, Any]) -> str:
    return "\n".join(reply["text"] for reply in answer["replies"])


@pytest.fixture
async def manual(tmp_path: Path) -> AsyncIterator[Chat]:
    settings = make_settings(tmp_path, api_token=API_TOKEN, admin_token=ADMIN_TOKEN)
    async with running(settings) as r:
        yield Chat(r)


@pytest.fixture
async def modelled(tmp_path: Path, fake_vlm: FakeVLM) -> AsyncIterator[Chat]:
    settings = make_settings(
        tmp_path,
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        vision=vision(fake_vlm, text_model="fake-text", text_timeout_seconds=0.5),
    )
    async with running(settings) as r:
        yield Chat(r)


# -- manual mode asks the type ---------------------------------------------------------------


async def test_manual_mode_asks_the_type_and_a_full_width_number_answers(manual: Chat) -> None:
    answer = await manual.photo()
    assert answer["state"] == "waiting_location"
    assert answer["choices"] == CATALOG
    text = said(answer)
    assert "哪一类" in text
    for i, name in enumerate(CATALOG, 1):
        assert f"{i}. {name}" in text

    answer = await manual.text("３")
    assert answer["state"] == "waiting_location"
    assert answer["choices"] == []
    assert f"「{PILE}」" in said(answer)
    assert "位置" in said(answer)

    answer = await manual.text("3号楼东侧楼梯间")  # now the location, not a type
    assert answer["state"] == "waiting_confirm"
    assert PILE in said(answer)
    assert "3号楼东侧楼梯间" in said(answer)
    answer = await manual.text("确认")
    assert answer["order"]["alarm_type"] == PILE
    assert answer["order"]["location"] == "3号楼东侧楼梯间"


async def test_a_name_answers_with_case_width_and_spaces_folded(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, api_token=API_TOKEN, alarm_types=["Blocked exit", "Water leak", "Other"]
    )
    async with running(settings) as r:
        chat = Chat(r)
        answer = await chat.photo(language="en-US")
        assert answer["choices"] == ["Blocked exit", "Water leak", "Other"]
        assert "Which type" in said(answer)
        answer = await chat.text("ＷＡＴＥＲ  leak")
        assert 'The type is now "Water leak"' in said(answer)
        assert answer["state"] == "waiting_location"


async def test_any_other_text_is_still_the_location(manual: Chat) -> None:
    await manual.photo()
    answer = await manual.text("９")  # no ninth type: a location, as the contract has it
    assert answer["state"] == "waiting_confirm"
    assert "未分类" in said(answer)
    answer = await manual.text("类型 漏 水")  # the words still correct it, folded alike
    assert f"「{LEAK}」" in said(answer)
    answer = await manual.text("确认")
    assert (answer["order"]["alarm_type"], answer["order"]["location"]) == (LEAK, "９")


async def test_the_question_is_not_asked_when_the_model_classified(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_json({"alarm_type": LEAK, "description": "地面积水", "confidence": 0.8})
    answer = await modelled.photo()
    assert answer["choices"] == []
    assert "哪一类" not in said(answer)
    # "3" is then a location (the model is asked what it means, and says nothing usable)
    answer = await modelled.text("3")
    assert answer["state"] == "waiting_confirm"
    assert LEAK in said(answer)


async def test_a_failed_model_asks_the_type_too(modelled: Chat, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_content("I cannot tell.")
    answer = await modelled.photo()
    assert answer["choices"] == CATALOG
    assert "自动识别暂时不可用" in said(answer)
    answer = await modelled.text("6")
    assert f"「{LEAK}」" in said(answer)
    assert fake_vlm.intent_requests == []  # a word (a type's number) needs no model


async def test_the_orders_to_close_are_offered_as_choices(manual: Chat) -> None:
    first = await manual.file_report("u1", "A区")
    second = await manual.file_report("u1", "B区")
    answer = await manual.text("结单")
    assert answer["choices"] == [second, first]  # newest first, as the numbered list
    answer = await manual.text("5")
    assert answer["choices"] == [second, first]  # out of range: asked again
    answer = await manual.text("２")
    assert answer["state"] == "waiting_close_photo"
    assert first in said(answer)
    assert answer["choices"] == []


# -- free text through the model -------------------------------------------------------------


async def test_a_correction_in_free_words_sets_the_type(modelled: Chat, fake_vlm: FakeVLM) -> None:
    await modelled.photo()  # the fake's default: 消防通道堵塞
    await modelled.text("3号楼东侧")
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "set_type", "alarm_type": LEAK})
    answer = await modelled.text("不对，是漏水")
    assert answer["state"] == "waiting_confirm"
    assert f"「{LEAK}」" in said(answer)
    request = fake_vlm.intent_requests[-1]
    assert request["model"] == "fake-text"
    assert request["response_format"] == {"type": "json_object"}
    prompt = "\n".join(request.texts)
    for part in ("waiting_confirm", "不对，是漏水", "3号楼东侧", "消防通道堵塞", "漏水"):
        assert part in prompt
    answer = await modelled.text("确认")
    assert answer["order"]["alarm_type"] == LEAK


async def test_free_words_give_the_location(modelled: Chat, fake_vlm: FakeVLM) -> None:
    await modelled.photo()
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "set_location", "location": "3号楼东边楼梯"})
    answer = await modelled.text("就在3号楼东边楼梯那")
    assert answer["state"] == "waiting_confirm"
    assert "位置：3号楼东边楼梯\n" in said(answer)


async def test_close_that_one_closes_the_users_one_open_order(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    number = await modelled.file_report("u1", "B区车库")
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "close_order"})
    answer = await modelled.text("帮我把刚才那单关了")
    assert answer["state"] == "waiting_close_photo"
    assert number in said(answer)


async def test_a_confirmation_in_free_words_files_the_report(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    await modelled.photo()
    await modelled.text("A区")
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "confirm"})
    answer = await modelled.text("没问题，提交吧")
    assert answer["state"] == "idle"
    assert answer["order"] is not None
    assert answer["order"]["location"] == "A区"


async def test_words_are_matched_first(modelled: Chat, fake_vlm: FakeVLM) -> None:
    await modelled.photo()
    await modelled.text("类型 6")
    await modelled.text("位置 A区")
    await modelled.text("帮助")
    await modelled.text("确认")
    assert fake_vlm.intent_requests == []


async def test_small_talk_in_idle_is_answered_with_the_models_reply(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "smalltalk", "reply": "不客气！"})
    answer = await modelled.text("谢谢你")
    assert said(answer) == "不客气！"
    assert len(fake_vlm.vision_requests) == 0  # no second request for a chat answer


async def test_manual_mode_asks_no_model(manual: Chat, fake_vlm: FakeVLM) -> None:
    await manual.photo()
    answer = await manual.text("就在3号楼东边楼梯那")
    assert "位置：就在3号楼东边楼梯那" in said(answer)
    assert fake_vlm.requests == []


# -- hostile answers: never more than the words ----------------------------------------------


async def test_another_users_order_number_gains_no_access(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    theirs = await modelled.file_report("u2", "C区")
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "close_order", "order_number": theirs})
    understood = await modelled.text("关掉这个单")
    by_words = await modelled.text(f"结单 {theirs}")
    assert understood["state"] == by_words["state"] == "idle"
    assert said(understood) == said(by_words)
    assert "不能由您结单" in said(understood)
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "accept_order", "order_number": theirs})
    understood = await modelled.text("这单我来")
    by_words = await modelled.text(f"接单 {theirs}")
    assert said(understood) == said(by_words)
    order = await modelled.order(theirs)
    assert (order["status"], order["assignee"]) == ("open", None)


@pytest.mark.parametrize(
    "answer",
    [
        {"intent": "delete_everything"},
        {"intent": ["confirm"]},
        {"intent": "confirm "},
        {"intent": "set_location", "location": 42},
        {"intent": "set_location", "location": "楼" * 5000},
        {"intent": "set_type", "alarm_type": "类" * 5000},
        {"intent": "set_type", "alarm_type": None},
        {"intent": "close_order", "order_number": "WO-1; DROP TABLE"},
        {"intent": "close_order", "order_number": "W" * 200},
        {"intent": "smalltalk", "reply": "话" * 50_000},
        {"no": "intent"},
    ],
    ids=lambda a: str(a)[:40],
)
async def test_an_unusable_answer_falls_back_to_the_words(
    modelled: Chat, fake_vlm: FakeVLM, answer: dict[str, Any]
) -> None:
    await modelled.photo()
    fake_vlm.enqueue_intent(answer)
    reply = await modelled.text("就在那个地方")  # waiting_location: the text is the location
    assert reply["state"] == "waiting_confirm"
    assert "位置：就在那个地方\n" in said(reply)
    assert len(said(reply)) < 1000
    assert len(fake_vlm.intent_requests) == 1


async def test_invalid_json_and_errors_fall_back(modelled: Chat, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_intent_content("好的，我明白了")
    answer = await modelled.text("你好")  # idle: the chat answer, as without understanding
    assert said(answer) == fake_vlm.default_chat
    fake_vlm.enqueue_intent_error(500)
    await modelled.photo()
    await modelled.text("A区")
    answer = await modelled.text("嗯嗯")  # waiting_confirm: the summary again
    assert answer["state"] == "waiting_confirm"
    assert "请确认上报信息" in said(answer)


async def test_an_intent_the_state_has_no_row_for_falls_back(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "confirm"})
    answer = await modelled.text("提交吧")  # idle: nothing to confirm; small talk as before
    assert answer["state"] == "idle"
    assert answer["order"] is None
    assert said(answer) == fake_vlm.default_chat


async def test_a_slow_model_is_abandoned_within_the_bound(
    modelled: Chat, fake_vlm: FakeVLM
) -> None:
    await modelled.photo()
    fake_vlm.enqueue_intent({**HOSTILE, "intent": "cancel"}, delay=10)
    started = time.monotonic()
    answer = await modelled.text("东门岗亭旁边")
    elapsed = time.monotonic() - started
    assert answer["state"] == "waiting_confirm"  # the location, not the late "cancel"
    assert "东门岗亭旁边" in said(answer)
    assert elapsed < 5, f"the turn took {elapsed:.1f} s; understanding is bounded at 0.5 s"


# -- language per user -----------------------------------------------------------------------


async def test_the_browsers_language_chooses_english_and_the_session_keeps_it(
    manual: Chat,
) -> None:
    answer = await manual.photo(language="en-GB")
    assert answer["language"] == "en"
    assert "Which type of problem is it?" in said(answer)
    answer = await manual.text("Building 3")  # no hint: the session remembers
    assert answer["language"] == "en"
    assert "Please confirm the report" in said(answer)
    answer = await manual.text("中文", language="en-GB")  # words win, in any state
    assert answer["state"] == "waiting_confirm"
    assert (answer["language"], said(answer)) == ("zh-CN", "好的，以后用中文回复。")
    answer = await manual.text("确认", language="en-GB")  # the hint no longer overrides
    assert answer["language"] == "zh-CN"
    assert "工单" in said(answer)
    response = await manual.r.client.get("/api/v1/users/u1/session", headers=bearer(API_TOKEN))
    assert response.json()["language"] == "zh-CN"


async def test_each_user_has_their_own_language(manual: Chat) -> None:
    english = await manual.text("help", "anna", language="en-US")
    chinese = await manual.text("help", "wang", language="zh-TW")
    other = await manual.text("help", "pierre", language="fr-FR")
    assert english["language"] == "en"
    assert "You can" in said(english)
    assert chinese["language"] == "zh-CN"
    assert "您可以" in said(chinese)
    assert other["language"] == "zh-CN"  # the service's default; nothing remembered
    answer = await manual.text("English", "pierre")
    assert (answer["language"], said(answer)) == ("en", "OK, I will reply in English from now on.")


async def test_a_hint_too_long_is_refused_and_nonsense_ignored(manual: Chat) -> None:
    response = await manual.r.client.post(
        "/api/v1/messages",
        json={"user_id": "u1", "text": "help", "language": "en-" + "x" * 40},
        headers=bearer(API_TOKEN),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "language" in response.json()["error"]["message"]
    answer = await manual.text("help", language="<script>\n")
    assert answer["language"] == "zh-CN"
    answer = await manual.text("help", language="en")  # nothing was remembered
    assert answer["language"] == "en"


def session_store(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``session`` settings of ``backend`` (Redis: the test's server and key prefix)."""
    session: dict[str, Any] = {"backend": backend}
    if backend == "redis":
        session["url"] = request.getfixturevalue("redis_url")
        session["key_prefix"] = request.getfixturevalue("redis_prefix")
    return session


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_every_session_store_keeps_the_language(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    session = session_store(backend, request)
    settings = make_settings(tmp_path, api_token=API_TOKEN, session=session)
    async with running(settings) as r:
        await Chat(r, "first").text("English")
        answer = await Chat(r, "second").text("help")
    assert answer["language"] == "en"
    assert "You can" in said(answer)
    if backend != "memory":  # a store that outlives the process
        async with running(settings) as r:
            answer = await Chat(r, "third").text("帮助")
        assert answer["language"] == "en"
        assert "You can" in said(answer)


def test_a_session_stored_before_the_language_field_still_loads() -> None:
    old = msgspec.msgpack.encode(["waiting_location", Slots(alarm_type=LEAK), [], 4, 1.0, 2.0])
    session = SessionCodec().decode("u1", old)
    assert (session.state, session.slots.alarm_type, session.language) == (
        "waiting_location",
        LEAK,
        "",
    )
    session.language = "en"
    assert SessionCodec().decode("u1", SessionCodec().encode(session)).language == "en"


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_the_chosen_language_outlives_the_session_on_every_store(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    session = session_store(backend, request)
    clock = FakeClock()
    settings = make_settings(tmp_path, api_token=API_TOKEN, session=session)
    async with running(settings, clock=clock) as r:
        chat = Chat(r)
        await chat.text("English", "anna")
        await chat.text("help", "bob", language="en-GB")  # a hint, not a choice
        clock.advance(settings.session.ttl_seconds + 60)
        await r.ctx.engine.purge_expired()
        assert await r.ctx.engine.peek("anna") is None  # the session is gone
        # the page asks before anything is said: her choice, bob's hint forgotten
        sessions = {
            user: (
                await r.client.get(f"/api/v1/users/{user}/session", headers=bearer(API_TOKEN))
            ).json()
            for user in ("anna", "bob")
        }
        assert sessions == {
            "anna": {"state": "idle", "expires_in": None, "language": "en"},
            "bob": {"state": "idle", "expires_in": None},
        }
        answer = await chat.text("help", "anna", language="zh-CN")
        assert answer["language"] == "en"  # her choice, ahead of the hint
        assert "You can" in said(answer)
        assert (await chat.text("help", "bob"))["language"] == "zh-CN"
        assert (await chat.text("help", "carl"))["language"] == "zh-CN"
