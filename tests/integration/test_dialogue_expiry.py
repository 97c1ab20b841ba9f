"""Sessions expire after 10 minutes without a message; a pending report or close says so; the
reply language the user chose outlives the session."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapreport.kv.base import KeyValueStore
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.kv.redis import RedisKeyValueStore
from snapreport.session.model import State
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.memory import MemorySessionStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.workflow.events import Outcome, TextEvent
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


# -- the chosen language outlives the session ------------------------------------------------


class CountingKV:
    """The real key-value store, its calls counted (on Redis each is one round trip)."""

    def __init__(self, inner: KeyValueStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def get(self, key: str) -> bytes | None:
        self.calls["get"] += 1
        return await self.inner.get(key)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        self.calls["set"] += 1
        await self.inner.set(key, value, ttl_seconds=ttl_seconds)

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        self.calls["set_if_absent"] += 1
        return await self.inner.set_if_absent(key, value, ttl_seconds=ttl_seconds)

    async def replace_if(
        self, key: str, expected: bytes, value: bytes, *, ttl_seconds: float
    ) -> bool:
        self.calls["replace_if"] += 1
        return await self.inner.replace_if(key, expected, value, ttl_seconds=ttl_seconds)

    async def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        await self.inner.delete(key)

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        self.calls["incr"] += 1
        return await self.inner.incr(key, ttl_seconds=ttl_seconds)

    async def aclose(self) -> None:
        await self.inner.aclose()


def stores(
    backend: str, clock: FakeClock, request: pytest.FixtureRequest
) -> tuple[SessionStore, KeyValueStore]:
    if backend == "memory":
        return MemorySessionStore(clock=clock), MemoryKeyValueStore(clock=clock)
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return (
        RedisSessionStore.from_url(url, prefix=prefix, clock=clock),
        RedisKeyValueStore.from_url(url, prefix=prefix),
    )


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_chosen_language_outlives_the_session_and_is_read_only_when_one_starts(
    tmp_path: Path, clock: FakeClock, backend: str, request: pytest.FixtureRequest
) -> None:
    store, kv = stores(backend, clock, request)
    counted = CountingKV(kv)
    async with dialogue(tmp_path, clock, store=store, kv=counted) as kit:

        async def say(user: str, text: str, hint: str | None = None) -> Outcome:
            return await kit.assistant.handle(user, TextEvent(text), language=hint)

        assert (await say("anna", "English")).language == "en"
        assert (await say("li", "help")).language == "zh-CN"
        assert (await say("bob", "help", hint="en-US")).language == "en"
        # each new session read the store once; only the choice was written
        assert counted.calls == {"get": 3, "set": 1}
        for _ in range(3):
            for user in ("anna", "li", "bob"):
                await say(user, "help")
            await kit.photo(user="anna")  # a report under way: the state changes, not the language
        assert counted.calls == {"get": 3, "set": 1}, "a turn of a live session read or wrote it"

        # idle for more than the session's ten minutes: the store drops the three records
        await say("anna", "取消")
        clock.advance(TTL_SECONDS + 60)
        await kit.engine.purge_expired()
        for user in ("anna", "li", "bob"):
            assert await kit.engine.peek(user) is None, user

        # anna's choice starts her new session, ahead of the browser's hint
        answer = await say("anna", "help", hint="zh-CN")
        assert answer.language == "en"
        assert answer.replies[0].text == load_texts("en")("help.idle")
        # bob's language was only hinted: not remembered; li never chose: the default
        assert (await say("bob", "help")).language == "zh-CN"
        assert (await say("li", "help")).language == "zh-CN"
        assert counted.calls == {"get": 6, "set": 1}

        # a new choice replaces the old one, for anna alone
        await say("anna", "中文")
        clock.advance(TTL_SECONDS + 60)
        await kit.engine.purge_expired()
        assert (await say("anna", "help")).language == "zh-CN"
        assert (await say("li", "help", hint="en")).language == "en"
