"""One contract for every ``SessionStore``: memory, SQLite, Redis (indexed) and Redis (SCAN mode,
as on Redis Cluster), each a parameter of the ``store`` fixture (indirect).

Time for expiry comes from the fake clock; only lock waits take real (short) time. A test that
needs a waiter to have reached the store polls the store's own queue for it (``queue_length``);
bounds on waits are generous (``WAIT``) and shorter than the lock TTL, so a lock left held by
someone who gave up fails the test instead of being taken over in time.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from snapreport.errors import LockLost, SessionBusy
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.memory import MemorySessionStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.session.stores.sqlite import SqliteSessionStore
from tests.harness.clock import FakeClock

ALL = ["memory", "sqlite", "redis", "redis-scan"]
SHARED = ["sqlite", "redis", "redis-scan"]  # backends whose instances share state
WAIT = 10.0  # a generous bound on a wait that takes milliseconds
LOCK_TTL = 30.0  # longer than WAIT: a lock nobody gives back is not taken over within a wait

StoreFactory = Callable[..., Awaitable[SessionStore]]


@pytest.fixture
async def store_factory(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Makes stores of the parametrised kind; all of one test share one backing store."""
    kind: str = request.param
    made: list[SessionStore] = []
    shared_memory: list[MemorySessionStore] = []
    url = request.getfixturevalue("redis_url") if kind.startswith("redis") else ""
    prefix = request.getfixturevalue("redis_prefix") if url else ""

    async def make(**options: Any) -> SessionStore:
        store: SessionStore
        if kind == "memory":
            if not shared_memory:
                shared_memory.append(MemorySessionStore(clock=clock))
            return shared_memory[0]
        if kind == "sqlite":
            options.setdefault("lock_ttl", LOCK_TTL)
            store = SqliteSessionStore(tmp_path / "sessions.db", clock=clock, **options)
        else:
            options.setdefault("lock_ttl", LOCK_TTL)
            store = RedisSessionStore.from_url(
                url, prefix=prefix, clock=clock, index=kind == "redis", **options
            )
        made.append(store)
        return store

    yield make
    for store in [*made, *shared_memory]:
        await store.aclose()


@pytest.fixture
async def store(store_factory: StoreFactory) -> SessionStore:
    return await store_factory()


async def put(
    store: SessionStore, user: str, blob: bytes | None, expires_at: float, keep: float = 0.0
) -> None:
    """Commit ``blob`` for ``user``; kept until ``keep`` (default: until it expires)."""
    lease = await store.acquire(user, timeout=WAIT)
    await store.commit(lease, blob, expires_at=expires_at, keep_until=max(keep, expires_at))


QueueLength = Callable[[str], Awaitable[int]]


@pytest.fixture
async def queue_length(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[QueueLength]:
    """How many acquires wait for a user's lock, read from the store itself: the memory store's
    waiter list, SQLite's waiters table, Redis's wait list."""
    kind: str = request.node.callspec.params["store_factory"]
    client: aioredis.Redis | None = None
    if kind.startswith("redis"):
        client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = request.getfixturevalue("redis_prefix") if client else ""

    async def length(user: str) -> int:
        if client is not None:
            return int(await client.llen(f"{prefix}:{{{user}}}:q"))
        if kind == "sqlite":
            with sqlite3.connect(tmp_path / "sessions.db") as db:
                row = db.execute(
                    "SELECT count(*) FROM session_waiters WHERE user_id = ?", (user,)
                ).fetchone()
            return int(row[0])
        store: MemorySessionStore = await request.getfixturevalue("store_factory")()
        lock = store._locks.get(user)
        return 0 if lock is None else sum(not f.done() for f in lock.waiters)

    yield length
    if client is not None:
        await client.aclose()


async def queued(queue_length: QueueLength, user: str, n: int) -> None:
    """Wait until ``n`` acquires wait for ``user``'s lock in the store (bounded by ``WAIT``)."""
    async with asyncio.timeout(WAIT):
        while await queue_length(user) < n:
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("store_factory", ALL, indirect=True)
class TestSessionStoreContract:
    # -- records ---------------------------------------------------------------------------

    async def test_a_new_user_has_no_blob_and_a_commit_stores_it(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        lease = await store.acquire("alice", timeout=WAIT)
        assert lease.blob is None
        assert lease.user_id == "alice"
        await store.commit(lease, b"one", expires_at=clock() + 600, keep_until=clock() + 600)
        assert await store.load("alice") == b"one"
        lease = await store.acquire("alice", timeout=WAIT)
        assert lease.blob == b"one"
        await store.release(lease)

    async def test_blobs_are_opaque_bytes(self, store: SessionStore, clock: FakeClock) -> None:
        blob = bytes(range(256)) * 400 + b"\x00\r\n{}|.:"
        await put(store, "bin", blob, clock() + 600)
        assert await store.load("bin") == blob

    async def test_release_writes_nothing(self, store: SessionStore, clock: FakeClock) -> None:
        await put(store, "alice", b"kept", clock() + 600)
        lease = await store.acquire("alice", timeout=WAIT)
        await store.release(lease)
        assert await store.load("alice") == b"kept"

    async def test_committing_none_deletes_the_record(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await put(store, "alice", b"x", clock() + 600)
        await put(store, "alice", None, 0.0)
        assert await store.load("alice") is None
        assert await store.count_active(clock()) == 0
        assert (await store.page_active(clock(), None, 10)).items == []

    async def test_load_neither_locks_nor_waits(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await put(store, "alice", b"x", clock() + 600)
        lease = await store.acquire("alice", timeout=WAIT)
        async with asyncio.timeout(WAIT):  # a load that waited would wait for the lock TTL
            assert await store.load("alice") == b"x"
        await store.release(lease)

    async def test_ping(self, store: SessionStore) -> None:
        await store.ping()

    # -- locking ---------------------------------------------------------------------------

    async def test_the_lock_is_exclusive(
        self, store: SessionStore, clock: FakeClock, queue_length: QueueLength
    ) -> None:
        first = await store.acquire("alice", timeout=WAIT)
        second = asyncio.create_task(store.acquire("alice", timeout=WAIT))
        await queued(queue_length, "alice", 1)
        assert not second.done()
        await store.commit(first, b"by first", expires_at=clock() + 600, keep_until=clock() + 600)
        lease = await asyncio.wait_for(second, WAIT)
        assert lease.blob == b"by first"  # the waiter loads after the holder's commit
        await store.release(lease)

    async def test_different_users_never_wait_for_each_other(self, store: SessionStore) -> None:
        alice = await store.acquire("alice", timeout=WAIT)
        async with asyncio.timeout(WAIT):  # bob's wait would last the lock TTL
            bob = await store.acquire("bob", timeout=LOCK_TTL)
        await store.release(bob)
        await store.release(alice)

    async def test_waiters_are_served_in_arrival_order(
        self, store: SessionStore, clock: FakeClock, queue_length: QueueLength
    ) -> None:
        holder = await store.acquire("alice", timeout=WAIT)
        served: list[int] = []

        async def waiter(i: int) -> None:
            lease = await store.acquire("alice", timeout=WAIT)
            served.append(i)
            blob = (lease.blob or b"") + f"{i},".encode()
            await store.commit(lease, blob, expires_at=clock() + 600, keep_until=clock() + 600)

        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(waiter(i)))
            await queued(queue_length, "alice", i + 1)
        await store.commit(holder, b"", expires_at=clock() + 600, keep_until=clock() + 600)
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert served == list(range(6))
        assert await store.load("alice") == b"0,1,2,3,4,5,"

    async def test_a_wait_that_runs_out_raises_busy_and_leaves_the_queue(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        holder = await store.acquire("alice", timeout=WAIT)
        async with asyncio.timeout(WAIT):  # the 0.2 s wait ends, well within the bound
            with pytest.raises(SessionBusy, match="busy"):
                await store.acquire("alice", timeout=0.2)
        await store.release(holder)
        # the one that gave up does not hold it: were it handed the lock, this would wait for
        # the lock TTL, longer than WAIT
        lease = await store.acquire("alice", timeout=WAIT)
        await store.release(lease)

    async def test_a_cancelled_waiter_gives_up_its_place(
        self, store: SessionStore, queue_length: QueueLength
    ) -> None:
        holder = await store.acquire("alice", timeout=WAIT)
        gone = asyncio.create_task(store.acquire("alice", timeout=WAIT))
        await queued(queue_length, "alice", 1)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        await store.release(holder)
        # were the lock handed to the cancelled waiter and kept, this would wait for the lock
        # TTL, longer than WAIT
        lease = await store.acquire("alice", timeout=WAIT)
        await store.release(lease)

    async def test_a_stale_lease_cannot_commit(self, store: SessionStore, clock: FakeClock) -> None:
        lease = await store.acquire("alice", timeout=WAIT)
        await store.commit(lease, b"one", expires_at=clock() + 600, keep_until=clock() + 600)
        with pytest.raises(LockLost, match="nothing was saved"):
            await store.commit(lease, b"two", expires_at=clock() + 600, keep_until=clock() + 600)
        assert await store.load("alice") == b"one"

    async def test_a_released_lease_cannot_overwrite_the_next_holder(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        old = await store.acquire("alice", timeout=WAIT)
        await store.release(old)
        new = await store.acquire("alice", timeout=WAIT)
        with pytest.raises(LockLost):
            await store.commit(old, b"stale", expires_at=clock() + 600, keep_until=clock() + 600)
        await store.commit(new, b"fresh", expires_at=clock() + 600, keep_until=clock() + 600)
        assert await store.load("alice") == b"fresh"
        with pytest.raises(LockLost):
            await store.commit(old, None, expires_at=0.0, keep_until=0.0)
        assert await store.load("alice") == b"fresh"

    # -- expiry ----------------------------------------------------------------------------

    async def test_counting_and_paging_use_the_logical_expiry(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        now = clock()
        for i in range(7):
            # u0 expires first; pending ones are kept a day longer but count the same way
            await put(store, f"u{i}", f"b{i}".encode(), now + 10 * (i + 1), now + 86_400)
        # times only move forward, as the engine's clock does (a store may purge as it counts)
        assert await store.count_active(now) == 7
        pages, cursor = [], None
        while True:
            page = await store.page_active(now, cursor, 3)
            pages.append([user for user, _ in page.items])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert pages == [["u0", "u1", "u2"], ["u3", "u4", "u5"], ["u6"]]
        assert await store.count_active(now + 35) == 4
        page = await store.page_active(now + 35, None, 10)
        assert page.items == [(f"u{i}", f"b{i}".encode()) for i in range(3, 7)]
        assert page.next_cursor is None
        page = await store.page_active(now + 35, "u4", 1)
        assert page.items == [("u5", b"b5")]
        assert page.next_cursor == "u5"
        assert await store.count_active(now + 1000) == 0

    async def test_a_record_is_kept_until_keep_until_then_purged(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        now = clock()
        await put(store, "idle", b"i", now + 10)
        await put(store, "pending", b"p", now + 10, now + 100)
        clock.advance(50)
        await store.purge_expired(clock(), 100)
        assert await store.load("idle") is None
        assert await store.load("pending") == b"p"  # so the engine can notice its expiry
        assert await store.count_active(clock()) == 0
        assert (await store.page_active(clock(), None, 10)).items == []
        lease = await store.acquire("pending", timeout=WAIT)
        assert lease.blob == b"p"
        await store.release(lease)
        clock.advance(100)
        await store.purge_expired(clock(), 100)
        assert await store.load("pending") is None

    async def test_a_commit_revives_a_kept_record(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        now = clock()
        await put(store, "pending", b"old", now + 10, now + 100)
        clock.advance(50)
        await store.purge_expired(clock(), 100)
        await put(store, "pending", b"new", clock() + 10, clock() + 1000)
        assert await store.count_active(clock()) == 1
        clock.advance(100)  # past the old keep time and the new expiry, not the new keep time
        await store.purge_expired(clock(), 100)
        assert await store.load("pending") == b"new"
        assert await store.count_active(clock()) == 0

    async def test_purging_is_bounded_by_its_limit(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        now = clock()
        for i in range(10):
            await put(store, f"u{i}", b"x", now + 1 + i)
        await put(store, "live", b"x", now + 1000)
        clock.advance(100)
        assert await store.purge_expired(clock(), 4) == 4
        total = 4
        while done := await store.purge_expired(clock(), 4):
            total += done
        assert total == 10
        assert await store.load("live") == b"x"
        assert [u for u, _ in (await store.page_active(clock(), None, 50)).items] == ["live"]

    # -- through the engine ----------------------------------------------------------------

    async def test_engine_turns_keep_history_and_version(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        engine = SessionEngine(store, EngineConfig(ttl_seconds=600), clock=clock)
        for i in range(12):
            async with engine.turn("alice") as session:
                session.history.add_user(f"q{i}")
                session.history.add_assistant(f"a{i}")
            clock.advance(1)
        info = await engine.peek("alice")
        assert info is not None
        assert not info.expired
        assert info.session.version == 12
        assert [m.text for m in info.session.history][:2] == ["q2", "a2"]  # last 10 turns
        assert len(info.session.history) == 10
        assert await engine.active_count() == 1
        page = await engine.list_active()
        assert [s.user_id for s in page.sessions] == ["alice"]

    async def test_engine_notices_a_pending_session_that_expired(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        engine = SessionEngine(store, EngineConfig(ttl_seconds=600), clock=clock)
        async with engine.turn("alice") as session:
            session.history.add_user("photo")
            session.state = "waiting_location"
            session.slots.analysis = "blocked fire exit"
        clock.advance(601)
        await engine.purge_expired()  # the sweeper ran: the record must still be kept
        assert await engine.active_count() == 0
        async with engine.turn("alice") as session:
            assert session.state == "idle"
            assert session.expired_from is not None
            assert session.expired_from.state == "waiting_location"
            assert session.expired_from.slots.analysis == "blocked fire exit"

    async def test_engine_forgets_an_idle_session_silently(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        engine = SessionEngine(store, EngineConfig(ttl_seconds=600), clock=clock)
        async with engine.turn("bob") as session:
            session.history.add_user("hello")
        clock.advance(601)
        await engine.purge_expired()
        assert await store.load("bob") is None
        async with engine.turn("bob") as session:
            assert session.expired_from is None
            assert len(session.history) == 0

    async def test_engine_writes_nothing_when_a_turn_fails(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        engine = SessionEngine(store, EngineConfig(ttl_seconds=600), clock=clock)
        async with engine.turn("alice") as session:
            session.history.add_user("kept")

        async def failing_turn() -> None:
            async with engine.turn("alice") as session:
                session.history.add_user("lost")
                session.state = "waiting_confirm"
                raise RuntimeError("the handler failed")

        with pytest.raises(RuntimeError):
            await failing_turn()
        async with asyncio.timeout(1):  # and the lock was released
            async with engine.turn("alice") as session:
                assert [m.text for m in session.history] == ["kept"]
                assert session.state == "idle"

    async def test_engine_concurrent_turns_lose_nothing(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        engine = SessionEngine(store, EngineConfig(ttl_seconds=600), clock=clock)

        async def turn() -> None:
            async with engine.turn("alice") as session:
                session.history.add_user(str(session.version + 1))

        await asyncio.wait_for(asyncio.gather(*(turn() for _ in range(20))), 30)
        info = await engine.peek("alice")
        assert info is not None
        assert info.session.version == 20
        assert [m.text for m in info.session.history] == [str(n) for n in range(11, 21)]

    async def test_engine_clear_deletes_everything(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        engine = SessionEngine(store, EngineConfig(ttl_seconds=600), clock=clock)
        async with engine.turn("alice") as session:
            session.history.add_user("x")
        assert await engine.clear("alice") is True
        assert await engine.peek("alice") is None
        assert await engine.clear("alice") is False
        assert await engine.active_count() == 0


# -- what only a store with real locks (shared by processes) has ------------------------------


@pytest.mark.parametrize("store_factory", SHARED, indirect=True)
class TestSharedStoreContract:
    async def test_two_instances_exclude_each_other_and_hand_over_in_order(
        self, store_factory: StoreFactory, clock: FakeClock, queue_length: QueueLength
    ) -> None:
        one, two = await store_factory(), await store_factory()
        holder = await one.acquire("alice", timeout=WAIT)
        served: list[str] = []

        async def waiter(store: SessionStore, name: str) -> None:
            lease = await store.acquire("alice", timeout=WAIT)
            served.append(name)
            await store.commit(lease, name.encode(), expires_at=clock() + 9, keep_until=clock() + 9)

        tasks = []
        for i, store in enumerate([two, one, two, one]):
            tasks.append(asyncio.create_task(waiter(store, f"w{i}")))
            await queued(queue_length, "alice", i + 1)
        await one.commit(holder, b"h", expires_at=clock() + 9, keep_until=clock() + 9)
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert served == ["w0", "w1", "w2", "w3"]
        assert await two.load("alice") == b"w3"

    async def test_an_expired_lock_is_taken_over_and_its_lease_is_fenced(
        self, store_factory: StoreFactory, clock: FakeClock
    ) -> None:
        frozen = await store_factory(lock_ttl=0.3, renew=False)  # a process that stopped
        other = await store_factory(lock_ttl=0.3)
        stale = await frozen.acquire("alice", timeout=WAIT)
        lease = await other.acquire("alice", timeout=WAIT)  # SessionBusy if never taken over
        with pytest.raises(LockLost):
            await frozen.commit(stale, b"stale", expires_at=clock() + 9, keep_until=clock() + 9)
        await other.commit(lease, b"fresh", expires_at=clock() + 9, keep_until=clock() + 9)
        assert await frozen.load("alice") == b"fresh"

    async def test_a_long_turn_keeps_its_lock_by_renewal(
        self, store_factory: StoreFactory, clock: FakeClock
    ) -> None:
        one = await store_factory(lock_ttl=0.3)
        two = await store_factory(lock_ttl=0.3)
        lease = await one.acquire("alice", timeout=WAIT)
        await asyncio.sleep(1.0)  # more than three lock TTLs
        with pytest.raises(SessionBusy):
            await two.acquire("alice", timeout=0.3)
        await one.commit(lease, b"slow", expires_at=clock() + 9, keep_until=clock() + 9)
        assert await two.load("alice") == b"slow"
