"""``MemoryKeyValueStore`` drops what expired as it is written to, and never what was written
again with a later deadline."""

from __future__ import annotations

from snapreport.kv.memory import SWEEP_PER_WRITE, MemoryKeyValueStore
from tests.harness.clock import FakeClock


async def test_expired_keys_leave_memory_as_new_ones_are_written(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock)
    for i in range(100):
        await kv.set(f"old{i}", b"v", ttl_seconds=10)
    clock.advance(11)
    for i in range(100 // SWEEP_PER_WRITE + 1):
        await kv.set(f"new{i}", b"v", ttl_seconds=10)
    assert not any(key.startswith("old") for key in kv._data)
    assert sum(key.startswith("new") for key in kv._data) == 100 // SWEEP_PER_WRITE + 1
    assert kv._seconds == sorted(kv._due)  # only the seconds still in use are filed


async def test_a_key_written_again_outlives_its_first_deadline(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock)
    await kv.set("k", b"first", ttl_seconds=5)
    clock.advance(4)
    await kv.set("k", b"second", ttl_seconds=60)
    clock.advance(10)
    for i in range(10):  # sweeps the second "k" was first filed under
        await kv.set(f"other{i}", b"v", ttl_seconds=60)
    assert await kv.get("k") == b"second"
    clock.advance(60)
    assert await kv.get("k") is None


async def test_past_max_entries_the_least_recently_used_key_is_evicted(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock, max_entries=3)
    for key in ("a", "b", "c"):
        await kv.set(key, key.encode(), ttl_seconds=86_400)
    assert await kv.get("a") == b"a"  # "a" is now the most recently used; "b" the least
    await kv.set("d", b"d", ttl_seconds=86_400)
    assert await kv.get("b") is None
    assert [await kv.get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]
    assert await kv.incr("n", ttl_seconds=60) == 1  # evicts "a" (c, d, a were used since)
    assert await kv.get("a") is None
    assert len(kv._data) == 3


async def test_many_writes_keep_memory_bounded_by_max_entries(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock, max_entries=100)
    for i in range(10_000):  # a day's deadline: nothing expires while this runs
        await kv.set(f"message:{i}", b"x" * 100, ttl_seconds=86_400)
    assert len(kv._data) == 100
    assert sum(len(keys) for keys in kv._due.values()) <= 2 * 100
    assert await kv.get("message:9999") == b"x" * 100
    assert await kv.get("message:0") is None
