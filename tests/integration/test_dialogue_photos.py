"""Several photos per report, and a photo's GPS offered as the location, through the HTTP API
with the fake model, in both languages.

``再发一张`` / ``add photo`` (or that text as the photo's caption) adds the next photo instead
of replacing it, up to 4; the analysis already shown stays; the summary counts the photos; the
order keeps them all (``image_keys``). EXIF GPS is offered and used only after a yes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock
from tests.harness.fake_vlm import FakeVLM
from tests.harness.metadata_photos import gps_jpeg
from tests.integration.http_kit import b64, make_settings, png_bytes, running

LANGUAGES = ("zh-CN", "en")
WORDS = {
    "zh-CN": {"yes": "确认", "add": "再发一张", "no": "不"},
    "en": {"yes": "yes", "add": "add photo", "no": "no"},
}
GPS = (31.225, 121.47)  # what tests.harness.metadata_photos writes: 31°13'30"N 121°28'12"E


@pytest.fixture(params=LANGUAGES)
async def chat(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, fake_vlm: FakeVLM
) -> AsyncIterator[Chat]:
    settings = make_settings(
        tmp_path,
        language=request.param,
        vision={
            "base_url": fake_vlm.url,
            "api_key": fake_vlm.api_key,
            "model": fake_vlm.model,
            "max_retries": 0,
        },
    )
    async with running(settings, clock=clock) as r:
        yield Chat(r.client, request.param)


class Chat:
    def __init__(self, client: httpx.AsyncClient, language: str) -> None:
        self.client = client
        self.language = language
        self.words = WORDS[language]
        self.say = load_texts(language)
        self.colors = 0

    async def send(self, **body: Any) -> dict[str, Any]:
        answer = await self.client.post("/api/v1/messages", json={"user_id": "wang", **body})
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def photo(self, data: bytes | None = None, caption: str = "") -> dict[str, Any]:
        self.colors += 1
        data = data if data is not None else png_bytes(color=(self.colors * 50 % 256, 80, 80))
        body: dict[str, Any] = {"image": {"data": b64(data), "mime": "image/png"}}
        if caption:
            body["text"] = caption
        return await self.send(**body)

    async def text(self, text: str) -> dict[str, Any]:
        return await self.send(text=text)


def reply(answer: dict[str, Any]) -> str:
    return "\n".join(r["text"] for r in answer["replies"])


async def test_four_photos_at_most_the_analysis_stays_and_the_order_keeps_them(
    chat: Chat, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_json({"alarm_type": "垃圾堆放", "description": "一堆纸箱", "confidence": 0.8})
    first = await chat.photo()
    assert first["state"] == "waiting_location"
    asked = await chat.text(chat.words["add"])
    assert asked["state"] == "waiting_location"
    assert reply(asked) == chat.say("photos.send_next", index=2, max=4)
    second = await chat.photo()
    assert second["state"] == "waiting_location"
    assert chat.say("photos.added", count=2, max=4) in reply(second)
    # the words as the photo's caption add it too
    third = await chat.photo(caption=chat.words["add"])
    assert chat.say("photos.added", count=3, max=4) in reply(third)
    located = await chat.text("3号楼东侧楼梯间")
    assert located["state"] == "waiting_confirm"
    assert "3" in reply(located)
    await chat.text(chat.words["add"])
    fourth = await chat.photo()
    assert fourth["state"] == "waiting_confirm"
    summary = reply(fourth)
    assert chat.say("photos.added", count=4, max=4) in summary
    assert ("照片：4 张" if chat.language == "zh-CN" else "Photos: 4") in summary
    assert "垃圾堆放" in summary  # the analysis already shown stays
    # a fifth: refused with a clear reply, at the word and with the caption
    full = await chat.text(chat.words["add"])
    assert reply(full) == chat.say("photos.full", max=4)
    fifth = await chat.photo(caption=chat.words["add"])
    assert chat.say("photos.full", max=4) in reply(fifth)
    assert fifth["state"] == "waiting_confirm"
    # only the first photo was analysed (texts the model was asked to understand carry none)
    assert [r.image_count for r in fake_vlm.requests if r.image_count] == [1]

    done = await chat.text(chat.words["yes"])
    order = done["order"]
    assert done["state"] == "idle"
    assert len(order["image_keys"]) == 4
    assert len(set(order["image_keys"])) == 4
    assert order["image_keys"][0] == order["image_key"]
    assert (order["alarm_type"], order["description"]) == ("垃圾堆放", "一堆纸箱")


async def test_a_plain_photo_replaces_the_last_one_of_several(chat: Chat) -> None:
    await chat.photo()
    await chat.text(chat.words["add"])
    await chat.photo()
    replaced = await chat.photo()  # no "add photo" before it: it replaces photo 2
    assert reply(replaced).startswith(chat.say("photos.replaced_last", index=2))
    await chat.text("A区北门")
    done = await chat.text(chat.words["yes"])
    assert len(done["order"]["image_keys"]) == 2


async def test_the_photos_gps_is_offered_and_used_on_yes(chat: Chat) -> None:
    first = await chat.photo(gps_jpeg())
    assert first["state"] == "waiting_location"
    assert chat.say("location.gps_offer", coordinates="31.225,121.47") in reply(first)
    taken = await chat.text(chat.words["yes"])
    assert taken["state"] == "waiting_confirm"
    assert "31.225,121.47" in reply(taken)
    done = await chat.text(chat.words["yes"])
    order = done["order"]
    assert (order["latitude"], order["longitude"]) == GPS
    assert order["location"] == "31.225,121.47"


async def test_the_photos_gps_is_never_used_silently(chat: Chat) -> None:
    await chat.photo(gps_jpeg())
    declined = await chat.text(chat.words["no"])
    assert declined["state"] == "waiting_location"  # a no declines the offer, not the report
    assert reply(declined).startswith(chat.say("location.gps_declined"))
    typed = await chat.text("A区北门")
    assert typed["state"] == "waiting_confirm"
    done = await chat.text(chat.words["yes"])
    assert (done["order"]["location"], done["order"]["latitude"]) == ("A区北门", None)
    # typing a place instead of answering the offer: the place, without the coordinates
    await chat.photo(gps_jpeg())
    await chat.text("B区车库")
    done = await chat.text(chat.words["yes"])
    assert (done["order"]["location"], done["order"]["longitude"]) == ("B区车库", None)


async def test_a_photo_without_gps_asks_as_before(chat: Chat) -> None:
    first = await chat.photo()
    assert chat.say("location.gps_offer", coordinates="").split("(")[0] not in reply(first)
    assert "31.225" not in reply(first)
    still = await chat.text(chat.words["yes"])
    assert still["state"] == "waiting_location"
    assert reply(still) == chat.say("location.still_needed")
    # a no here still cancels the report, as in Part 1
    cancelled = await chat.text(chat.words["no"])
    assert cancelled["state"] == "idle"
