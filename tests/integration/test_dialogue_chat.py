"""Small talk in idle: the model answers from the history, with only the latest photo inline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.session.history import IMAGE_PLACEHOLDER
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock
from tests.harness.fake_vlm import FakeVLM
from tests.integration.dialogue_kit import Kit, dialogue, png_bytes, vlm_vision

ZH = load_texts("zh-CN")
FIRST, SECOND = png_bytes((10, 200, 10)), png_bytes((200, 200, 10))


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock, vision=vlm_vision(fake_vlm)) as built:
        yield built


async def test_the_model_answers_small_talk(kit: Kit, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_content("您好！发送现场照片即可上报。")
    outcome = await kit.text("你好，你能做什么？")
    assert outcome.state == "idle"
    assert [r.text for r in outcome.replies] == ["您好！发送现场照片即可上报。"]
    (request,) = fake_vlm.vision_requests
    assert request.image_count == 0
    assert "你好，你能做什么？" in request.texts
    assert "response_format" not in request


async def test_only_the_latest_photo_goes_inline(kit: Kit, fake_vlm: FakeVLM) -> None:
    await kit.report(data=FIRST)
    await kit.report(data=SECOND)
    fake_vlm.reset()
    outcome = await kit.text("刚才那张照片里是什么问题？")
    assert outcome.state == "idle"
    (request,) = fake_vlm.vision_requests
    assert request.image_count == 1
    assert IMAGE_PLACEHOLDER in request.texts
    assert request.texts[-1] == "刚才那张照片里是什么问题？"
    # the inline photo is the second one (downscaled to JPEG by the adapter)
    session = await kit.session()
    keys = [img.key for m in session.history.messages() for img in m.images]
    assert len(keys) == 2
    assert keys[-1] != keys[0]


async def test_a_photo_gone_from_the_store_becomes_a_placeholder(
    kit: Kit, fake_vlm: FakeVLM
) -> None:
    await kit.report(data=FIRST)
    for path in kit.stored_media():
        path.unlink()
    fake_vlm.reset()
    outcome = await kit.text("还在吗")
    assert outcome.replies[0].text == fake_vlm.default_chat
    (request,) = fake_vlm.vision_requests
    assert request.image_count == 0


@pytest.mark.parametrize("status", [429, 500])
async def test_a_failing_model_answers_with_the_help(
    kit: Kit, fake_vlm: FakeVLM, status: int
) -> None:
    fake_vlm.enqueue_error(status)
    fake_vlm.enqueue_error(status)
    outcome = await kit.text("在吗")
    assert outcome.state == "idle"
    assert outcome.replies[0].text == ZH("chat.unavailable") + "\n" + ZH("help.idle")


async def test_without_a_model_small_talk_gets_the_help(tmp_path: Path, clock: FakeClock) -> None:
    async with dialogue(tmp_path, clock) as kit:
        outcome = await kit.text("你好")
        assert [r.text for r in outcome.replies] == [ZH("help.idle")]


async def test_the_answer_is_recorded_in_history(kit: Kit, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_content("好的。")
    await kit.text("谢谢")
    (turn,) = (await kit.session()).history.turns
    assert [(m.role, m.text) for m in turn] == [("user", "谢谢"), ("assistant", "好的。")]
