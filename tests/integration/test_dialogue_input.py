"""Input the dialogue cannot take: a clear reply, and the session exactly as it was."""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from snapreport.errors import InvalidUserId
from snapreport.session.model import STATES, State
from snapreport.workflow.events import LocationEvent
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock
from tests.integration.dialogue_kit import USER, Kit, dialogue, png_bytes

ZH = load_texts("zh-CN")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.fixture
async def kit(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Kit]:
    async with dialogue(tmp_path, clock) as built:
        yield built


async def assert_unchanged(kit: Kit, state: State, before_version: int, before_turns: int) -> None:
    session = await kit.session()
    assert session.state == state
    assert session.version == before_version
    assert len(session.history) == before_turns


@pytest.mark.parametrize(
    ("data", "reply_key"),
    [
        (b"this is a text file, not a photo", "input.image_unsupported"),
        (b"", "input.image_invalid"),
        (gif_bytes(), "input.image_unsupported"),
        (PNG_SIGNATURE + b"\x00" * 64, "input.image_invalid"),
        (png_bytes()[:-40], "input.image_invalid"),
    ],
)
@pytest.mark.parametrize("state", STATES)
async def test_a_bad_upload_is_refused_and_nothing_is_stored(
    kit: Kit, state: State, data: bytes, reply_key: str
) -> None:
    await kit.reach(state)
    before = await kit.session()
    stored = kit.stored_media()
    outcome = await kit.photo(data, mime="image/jpeg")
    assert [r.text for r in outcome.replies] == [ZH(reply_key)]
    assert outcome.state == state
    assert kit.stored_media() == stored
    after = await kit.session()
    assert (after.state, after.slots, after.version) == (state, before.slots, before.version)
    assert after.history.turns == before.history.turns


async def test_a_first_message_that_is_refused_leaves_no_session(kit: Kit) -> None:
    outcome = await kit.photo(b"GIF89a nope")
    assert outcome.state == "idle"
    assert await kit.engine.peek(USER) is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
async def test_an_empty_text_is_refused(kit: Kit, text: str) -> None:
    await kit.reach("waiting_location")
    before = await kit.session()
    outcome = await kit.text(text)
    assert [r.text for r in outcome.replies] == [ZH("input.empty")]
    await assert_unchanged(kit, "waiting_location", before.version, len(before.history))


async def test_a_5000_character_location_is_refused(kit: Kit) -> None:
    await kit.reach("waiting_location")
    before = await kit.session()
    outcome = await kit.text("楼" * 5000)
    assert outcome.state == "waiting_location"
    assert [r.text for r in outcome.replies] == [ZH("input.too_long", max=2000)]
    await assert_unchanged(kit, "waiting_location", before.version, len(before.history))
    assert (await kit.session()).slots.location == ""


async def test_a_location_over_200_characters_is_refused(kit: Kit) -> None:
    await kit.reach("waiting_location")
    before = await kit.session()
    outcome = await kit.text("东" * 201)
    assert [r.text for r in outcome.replies] == [ZH("location.too_long", max=200)]
    await assert_unchanged(kit, "waiting_location", before.version, len(before.history))
    outcome = await kit.text("东" * 200)
    assert outcome.state == "waiting_confirm"


async def test_a_too_long_correction_at_confirmation_is_refused(kit: Kit) -> None:
    await kit.reach("waiting_confirm")
    before = await kit.session()
    outcome = await kit.text("位置 " + "x" * 300)
    assert [r.text for r in outcome.replies] == [ZH("location.too_long", max=200)]
    await assert_unchanged(kit, "waiting_confirm", before.version, len(before.history))


async def test_an_empty_location_correction_is_refused(kit: Kit) -> None:
    await kit.reach("waiting_confirm")
    before = await kit.session()
    outcome = await kit.text("位置")
    assert [r.text for r in outcome.replies] == [ZH("location.empty")]
    await assert_unchanged(kit, "waiting_confirm", before.version, len(before.history))


@pytest.mark.parametrize("state", ["waiting_location", "waiting_confirm"])
async def test_a_location_event_with_a_5000_character_label_is_refused(
    kit: Kit, state: State
) -> None:
    await kit.reach(state)
    before = await kit.session()
    outcome = await kit.location(label="A" * 5000)
    assert [r.text for r in outcome.replies] == [ZH("location.too_long", max=200)]
    await assert_unchanged(kit, state, before.version, len(before.history))


@pytest.mark.parametrize(
    ("latitude", "longitude"), [(91.0, 0.0), (0.0, -180.5), (math.nan, 1.0), (1.0, math.inf)]
)
async def test_impossible_coordinates_are_refused(
    kit: Kit, latitude: float, longitude: float
) -> None:
    await kit.reach("waiting_location")
    before = await kit.session()
    outcome = await kit.send(LocationEvent(latitude, longitude, "A区"))
    assert [r.text for r in outcome.replies] == [ZH("input.bad_coordinates")]
    await assert_unchanged(kit, "waiting_location", before.version, len(before.history))


async def test_a_location_in_idle_asks_for_a_photo_first(kit: Kit) -> None:
    outcome = await kit.location(label="A区")
    assert outcome.state == "idle"
    assert [r.text for r in outcome.replies] == [ZH("idle.location_without_photo")]


async def test_a_too_long_caption_is_refused_before_storing(kit: Kit) -> None:
    outcome = await kit.photo(caption="字" * 2001)
    assert [r.text for r in outcome.replies] == [ZH("input.too_long", max=2000)]
    assert kit.stored_media() == []


async def test_a_caption_is_kept_with_the_photo(kit: Kit) -> None:
    await kit.photo(caption="东门口")
    (message, *_) = (await kit.session()).history.turns[0]
    assert len(message.images) == 1
    assert message.text == "东门口"


async def test_an_invalid_user_id_is_an_error(kit: Kit) -> None:
    with pytest.raises(InvalidUserId):
        await kit.text("你好", user="bad user/")
