"""What only the memory store promises: O(1) work per request, expiry work proportional to what
expires, a lock map that holds only held locks. (Its behaviour as a ``SessionStore`` is in the
contract tests.)"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from snapreport.errors import SessionBusy
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores import memory
from snapreport.session.stores.memory import PURGE_PER_COMMIT, MemorySessionStore
from tests.harness.clock import FakeClock

WAIT = 5.0


@pytest.fixture
def store(clock: FakeClock) -> MemorySessionStore:
    return MemorySessionStore(clock=clock)


async def put(
    store: MemorySessionStore, user: str, blob: bytes | None, expires_at: float, keep: float = 0.0
) -> None:
    lease = await store.acquire(user, timeout=WAIT)
    await store.commit(lease, blob, expires_at=expires_at, keep_until=max(keep, expires_at))


@pytest.fixture
def header_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts how many stored records the store looks at (each look reads a header)."""
    reads = [0]
    real: Callable[..., Any] = memory._read_header

    def counting(record: bytes) -> Any:
        reads[0] += 1
        return real(record)

    monkeypatch.setattr(memory, "_read_header", counting)
    return reads


# -- locks ---------------------------------------------------------------------------------------


async def test_the_lock_map_holds_only_held_locks(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    engine = SessionEngine(store, EngineConfig(), clock=clock)
    for i in range(2000):
        async with engine.turn(f"user{i}") as session:
            assert store.locked_users == 1
            session.history.add_user("x")
    assert store.locked_users == 0
    assert len(store) == 2000


async def test_waiters_share_one_lock_entry(store: MemorySessionStore) -> None:
    holder = await store.acquire("alice", timeout=WAIT)
    waiters = [asyncio.create_task(store.acquire("alice", timeout=WAIT)) for _ in range(5)]
    await asyncio.sleep(0)
    assert store.locked_users == 1
    await store.release(holder)
    for task in waiters:
        await store.release(await task)
    assert store.locked_users == 0


async def test_a_waiter_cancelled_just_after_it_was_handed_the_lock_passes_it_on(
    store: MemorySessionStore,
) -> None:
    holder = await store.acquire("alice", timeout=WAIT)
    first = asyncio.create_task(store.acquire("alice", timeout=WAIT))
    second = asyncio.create_task(store.acquire("alice", timeout=WAIT))
    await asyncio.sleep(0)
    await store.release(holder)  # hands the lock to ``first``, which has not run yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    lease = await asyncio.wait_for(second, 1)
    await store.release(lease)
    assert store.locked_users == 0


async def test_a_timed_out_waiter_leaves_no_trace(store: MemorySessionStore) -> None:
    holder = await store.acquire("alice", timeout=WAIT)
    with pytest.raises(SessionBusy):
        await store.acquire("alice", timeout=0.01)
    await store.release(holder)
    assert store.locked_users == 0


# -- records --------------------------------------------------------------------------------------


async def test_load_returns_the_exact_blob(store: MemorySessionStore, clock: FakeClock) -> None:
    await put(store, "alice", b"\x00blob\xff", clock() + 10)
    assert await store.load("alice") == b"\x00blob\xff"
    lease = await store.acquire("alice", timeout=WAIT)
    assert lease.blob == b"\x00blob\xff"
    await store.release(lease)


async def test_a_record_is_one_exact_size_object(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    big = bytearray(1000)
    blob = bytes(big)
    await put(store, "alice", blob, clock() + 10)
    record = store._shard("alice")["alice"]
    assert sys.getsizeof(record) == sys.getsizeof(b"") + 16 + len(blob)


# -- expiry ---------------------------------------------------------------------------------------


async def test_a_commit_purges_a_bounded_number_of_expired_records(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    for i in range(100):
        await put(store, f"old{i}", b"x", clock() + 10)
    clock.advance(11)
    await put(store, "new", b"x", clock() + 10)
    assert len(store) == 101 - PURGE_PER_COMMIT
    while await store.purge_expired(clock(), 7):
        pass
    assert len(store) == 1


async def test_purging_looks_only_at_what_expires(
    store: MemorySessionStore, clock: FakeClock, header_reads: list[int]
) -> None:
    now = clock()
    for i in range(50):
        await put(store, f"old{i}", b"x", now + 10)
    for i in range(20_000):
        await put(store, f"live{i}", b"x", now + 1000)
    clock.advance(20)
    header_reads[0] = 0
    assert await store.purge_expired(clock(), 10_000) == 50
    assert header_reads[0] <= 50 + 2  # the 50 that expired and the first live one
    header_reads[0] = 0
    assert await store.purge_expired(clock(), 10_000) == 0
    assert header_reads[0] <= 2
    header_reads[0] = 0
    assert await store.count_active(clock()) == 20_000
    assert header_reads[0] <= 2


async def test_a_commit_with_nothing_due_looks_at_one_record(
    store: MemorySessionStore, clock: FakeClock, header_reads: list[int]
) -> None:
    for i in range(5000):
        await put(store, f"u{i}", b"x", clock() + 600)
    header_reads[0] = 0
    await put(store, "u1", b"y", clock() + 600)
    assert header_reads[0] <= 1


async def test_out_of_order_expiries_still_expire_on_time(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    now = clock()
    await put(store, "late", b"x", now + 100)
    await put(store, "early", b"x", now + 10)  # earlier than the newest: a straggler
    await put(store, "middle", b"x", now + 50)
    clock.advance(20)
    assert await store.count_active(clock()) == 2
    assert await store.load("early") is None
    clock.advance(40)
    assert await store.count_active(clock()) == 1
    assert [u for u, _ in (await store.page_active(clock(), None, 10)).items] == ["late"]


async def test_a_straggler_committed_again_keeps_its_new_expiry(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    now = clock()
    await put(store, "a", b"x", now + 100)
    await put(store, "b", b"old", now + 10)  # on the heap for now + 10
    await put(store, "b", b"new", now + 200)
    clock.advance(150)
    assert await store.purge_expired(clock(), 100) == 1  # only "a"
    assert await store.load("b") == b"new"


async def test_kept_records_leave_in_keep_time_order(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    now = clock()
    await put(store, "long", b"x", now + 10, now + 500)
    await put(store, "short", b"x", now + 20, now + 100)
    clock.advance(30)
    await store.purge_expired(clock(), 100)
    assert await store.count_active(clock()) == 0
    assert len(store) == 2
    clock.advance(100)
    await store.purge_expired(clock(), 100)
    assert await store.load("short") is None
    assert await store.load("long") == b"x"
    clock.advance(400)
    await store.purge_expired(clock(), 100)
    assert len(store) == 0


async def test_counting_many_expired_records_lets_requests_run(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    for i in range(5000):
        await put(store, f"u{i}", b"x", clock() + 10)
    clock.advance(11)
    ran = asyncio.Event()

    async def request() -> None:
        ran.set()

    task = asyncio.create_task(request())
    assert await store.count_active(clock()) == 0
    assert ran.is_set()
    await task


async def test_a_page_skips_expired_records_not_yet_purged(
    store: MemorySessionStore, clock: FakeClock, header_reads: list[int]
) -> None:
    now = clock()
    for i in range(10):
        await put(store, f"a{i}", b"x", now + 10)
    await put(store, "b", b"y", now + 100)
    await put(store, "c", b"z", now + 100)
    clock.advance(20)
    page = await store.page_active(clock(), None, 1)
    assert page.items == [("b", b"y")]
    assert page.next_cursor == "b"
    page = await store.page_active(clock(), "b", 1)
    assert page.items == [("c", b"z")]
    assert page.next_cursor is None


async def test_paging_through_many_sessions_lists_each_live_one_once_in_order(
    store: MemorySessionStore, clock: FakeClock
) -> None:
    now = clock()
    for i in range(5000):
        # every third one has expired (and is not purged yet)
        await put(store, f"u{i:05d}", f"{i}".encode(), now + (5 if i % 3 == 0 else 600))
    clock.advance(10)
    listed: list[tuple[str, bytes]] = []
    cursor = None
    while True:
        page = await store.page_active(clock(), cursor, 97)
        assert len(page.items) <= 97
        listed += page.items
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1][0]
        cursor = page.next_cursor
    assert listed == [(f"u{i:05d}", f"{i}".encode()) for i in range(5000) if i % 3]


# -- against a model ----------------------------------------------------------------------------

store_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("commit"),
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.floats(-5, 50, allow_nan=False),  # expires in, seconds (may be in the past)
            st.sampled_from([0.0, 0.0, 0.5, 3.0, 40.0]),  # kept for this much longer
        ),
        st.tuples(st.just("delete"), st.sampled_from(["a", "b", "c", "d", "e"])),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.25, 0.999, 1.0, 7.5, 30.0])),
        st.tuples(st.just("purge"), st.integers(1, 3)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(program=store_ops)
def test_the_store_matches_a_model(program: list[tuple[Any, ...]]) -> None:
    """Any expiry order, kept records, purges of any size: counting and listing are exact,
    nothing is dropped before its keep time, and everything is dropped soon after."""

    async def main() -> None:
        clock = FakeClock(1000.0)
        store = MemorySessionStore(clock=clock)
        model: dict[str, tuple[bytes, float, float]] = {}
        for n, op in enumerate(program):
            now = clock()
            if op[0] == "commit":
                blob = f"{op[1]}{n}".encode()
                expires_at = now + op[2]
                model[op[1]] = (blob, expires_at, expires_at + op[3])
                await put(store, op[1], blob, expires_at, expires_at + op[3])
            elif op[0] == "delete":
                model.pop(op[1], None)
                await put(store, op[1], None, 0.0)
            elif op[0] == "advance":
                clock.advance(op[1])
            else:
                await store.purge_expired(now, op[1])
            now = clock()
            for user in "abcde":
                got = await store.load(user)
                if user not in model:
                    assert got is None
                elif model[user][2] > now:
                    assert got == model[user][0]  # never dropped before its keep time
                else:
                    assert got in (None, model[user][0])
            active = sorted(u for u, (_, exp, _) in model.items() if exp > now)
            assert await store.count_active(now) == len(active)
            page = await store.page_active(now, None, 2)
            listed, cursor = list(page.items), page.next_cursor
            while cursor is not None:
                page = await store.page_active(now, cursor, 2)
                listed += page.items
                cursor = page.next_cursor
            assert listed == [(u, model[u][0]) for u in active]
        clock.advance(1.0)  # a whole bucket later, a full purge leaves only what is kept
        end = clock()
        while await store.purge_expired(end, 2):
            pass
        for user, (blob, _, keep) in model.items():
            if keep > end:
                assert await store.load(user) == blob
            elif keep <= end - 1.0:
                assert await store.load(user) is None
        must = sum(keep > end for _, _, keep in model.values())
        may = sum(keep > end - 1.0 for _, _, keep in model.values())
        assert must <= len(store) <= may
        assert store.locked_users == 0

    asyncio.run(main())
