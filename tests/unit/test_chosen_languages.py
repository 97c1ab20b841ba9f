"""``ChosenLanguages``: a user's chosen reply language, kept in the key-value store for 180
days after it was last used, written again on a read at most once per 7.5 days."""

from __future__ import annotations

from snapreport.kv.keys import key_of
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.workflow.languages import KEEP_SECONDS, ChosenLanguages
from tests.harness.clock import FakeClock

DAY = 86_400.0


async def test_a_choice_is_each_users_own(clock: FakeClock) -> None:
    chosen = ChosenLanguages(MemoryKeyValueStore(clock=clock), clock=clock)
    await chosen.remember("anna", "en")
    await chosen.remember("li", "zh-CN")
    assert await chosen.recall("anna") == "en"
    assert await chosen.recall("li") == "zh-CN"
    # ids that share a prefix, or would run into each other unprefixed, know nothing
    for other in ("ann", "anna:", "a", "nobody"):
        assert await chosen.recall(other) is None, other
    await chosen.remember("anna", "zh-CN")  # a later choice replaces the earlier one
    assert await chosen.recall("anna") == "zh-CN"
    assert await chosen.recall("li") == "zh-CN"


async def test_kept_for_180_days_after_its_last_use(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock)
    chosen = ChosenLanguages(kv, clock=clock)
    assert chosen.keep_seconds == KEEP_SECONDS == 180 * DAY
    await chosen.remember("used", "en")
    await chosen.remember("unused", "en")
    # read every 100 days: each read after 7.5 days writes it again, for 180 days from then
    for _ in range(3):
        clock.advance(100 * DAY)
        assert await chosen.recall("used") == "en"
    assert await chosen.recall("unused") is None  # 300 days without a read: forgotten


async def test_a_read_writes_again_at_most_once_per_refresh(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock)
    chosen = ChosenLanguages(kv, clock=clock)
    await chosen.remember("anna", "en")
    key = key_of("language", "anna")
    written = await kv.get(key)
    clock.advance(7 * DAY)
    assert await chosen.recall("anna") == "en"
    assert await kv.get(key) == written  # read, not written
    clock.advance(1 * DAY)
    assert await chosen.recall("anna") == "en"
    assert await kv.get(key) != written  # 8 days since it was written: written again


async def test_what_cannot_be_read_is_no_choice(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock)
    chosen = ChosenLanguages(kv, clock=clock)
    for raw in (b"en", b"{}", b'{"language": "fr", "seen_at": 0}', b"\xff"):
        await kv.set(key_of("language", "anna"), raw, ttl_seconds=60)
        assert await chosen.recall("anna") is None, raw
