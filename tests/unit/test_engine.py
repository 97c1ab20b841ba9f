"""The session engine on the memory store: turns, expiry, reading, clearing, sweeping.

Time comes from the fake clock; nothing sleeps except to let tasks interleave.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from snapreport.errors import (
    InvalidHistory,
    InvalidInput,
    InvalidSlotValue,
    InvalidState,
    InvalidUserId,
    LockLost,
    SessionBusy,
    SessionNotFound,
    StoreUnavailable,
    TextTooLong,
)
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.history import ImagePart, TextPart
from snapreport.session.model import Slots
from snapreport.session.stores.base import Lease
from snapreport.session.stores.memory import MemorySessionStore
from tests.harness.clock import FakeClock

TTL = 600.0


def make_engine(clock: FakeClock, **config: Any) -> SessionEngine:
    config.setdefault("ttl_seconds", TTL)
    return SessionEngine(MemorySessionStore(clock=clock), EngineConfig(**config), clock=clock)


@pytest.fixture
def engine(clock: FakeClock) -> SessionEngine:
    return make_engine(clock)


async def say(engine: SessionEngine, user: str, text: str) -> None:
    async with engine.turn(user) as session:
        session.history.add_user(text)


async def stored_texts(engine: SessionEngine, user: str) -> list[str]:
    info = await engine.peek(user)
    assert info is not None
    return [m.text for m in info.session.history]


# -- a turn ------------------------------------------------------------------------------------


async def test_a_first_turn_creates_and_commits_a_session(
    engine: SessionEngine, clock: FakeClock
) -> None:
    async with engine.turn("alice") as session:
        assert (session.user_id, session.state, session.version) == ("alice", "idle", 0)
        assert session.created_at == session.updated_at == clock()
        assert session.expired_from is None
        session.history.add_user("hello")
        session.history.add_assistant("hi!")
    assert session.version == 1  # the object held after the turn shows what was committed
    info = await engine.peek("alice")
    assert info is not None
    assert info.session.version == 1
    assert info.expires_at == clock() + TTL
    assert [m.text for m in info.session.history] == ["hello", "hi!"]


async def test_each_commit_bumps_the_version_and_refreshes_updated_at(
    engine: SessionEngine, clock: FakeClock
) -> None:
    created = clock()
    for i in range(3):
        clock.advance(10)
        async with engine.turn("alice") as session:
            assert session.version == i
            session.history.add_user(str(i))
    info = await engine.peek("alice")
    assert info is not None
    assert (info.session.version, info.session.created_at, info.session.updated_at) == (
        3,
        created + 10,
        clock(),
    )


async def test_state_and_slots_survive_between_turns(engine: SessionEngine) -> None:
    async with engine.turn("alice") as session:
        session.history.add_user([ImagePart("m/1.jpg", "image/jpeg", 10, 2, 2), "look"])
        session.state = "waiting_confirm"
        session.slots.image_key = "m/1.jpg"
        session.slots.analysis = "water on the floor"
        session.slots.alarm_type = "leak"
        session.slots.order_id = "o-1"
        session.slots.alarm_id = "a-1"
        session.slots.confidence = 0.9
    async with engine.turn("alice") as session:
        assert session.state == "waiting_confirm"
        assert session.slots == Slots(
            image_key="m/1.jpg",
            analysis="water on the floor",
            alarm_type="leak",
            order_id="o-1",
            alarm_id="a-1",
            confidence=0.9,
        )
        assert session.history.turns[0][0].images[0].key == "m/1.jpg"


async def test_history_is_bounded_by_max_turns(clock: FakeClock) -> None:
    engine = make_engine(clock, max_turns=3)
    for i in range(7):
        async with engine.turn("alice") as session:
            session.history.add_user(f"q{i}")
            session.history.add_assistant(f"a{i}")
    assert await stored_texts(engine, "alice") == ["q4", "a4", "q5", "a5", "q6", "a6"]


async def test_the_text_cap_comes_from_the_config(clock: FakeClock) -> None:
    engine = make_engine(clock, max_text_chars=5)
    with pytest.raises(TextTooLong):
        async with engine.turn("alice") as session:
            session.history.add_user("123456")
    assert await engine.peek("alice") is None


# -- nothing is written on failure -------------------------------------------------------------


async def test_an_exception_in_the_turn_writes_nothing_and_releases_the_lock(
    engine: SessionEngine,
) -> None:
    await say(engine, "alice", "kept")

    async def failing() -> None:
        async with engine.turn("alice") as session:
            session.history.add_user("lost")
            session.state = "waiting_confirm"
            session.slots.analysis = "lost too"
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing()
    async with asyncio.timeout(1):
        async with engine.turn("alice") as session:
            assert [m.text for m in session.history] == ["kept"]
            assert (session.state, session.slots, session.version) == ("idle", Slots(), 1)


async def test_a_cancelled_turn_writes_nothing(engine: SessionEngine) -> None:
    await say(engine, "alice", "kept")
    entered = asyncio.Event()

    async def slow() -> None:
        async with engine.turn("alice") as session:
            session.history.add_user("lost")
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await stored_texts(engine, "alice") == ["kept"]
    assert isinstance(engine.store, MemorySessionStore)
    assert engine.store.locked_users == 0


BAD_EDITS: list[tuple[str, type[InvalidInput]]] = [
    ("state", InvalidState),
    ("slot_type", InvalidSlotValue),
    ("slot_length", InvalidSlotValue),
    ("slot_unicode", InvalidSlotValue),
    ("history", InvalidHistory),
]


def spoil(session: Any, how: str) -> None:
    if how == "state":
        session.state = "waiting_for_godot"
    elif how == "slot_type":
        session.slots.order_id = 20260101
    elif how == "slot_length":
        session.slots.analysis = "x" * 4001
    elif how == "slot_unicode":
        session.slots.location = "\udc80"
    else:
        session.history = []


@pytest.mark.parametrize(("how", "error"), BAD_EDITS)
async def test_a_session_that_cannot_be_stored_raises_a_specific_error_and_writes_nothing(
    engine: SessionEngine, how: str, error: type[InvalidInput]
) -> None:
    async with engine.turn("alice") as session:
        session.history.add_user("kept")
        session.state = "waiting_location"
    before = await engine.store.load("alice")
    turn = engine.turn("alice")
    session = await turn.__aenter__()
    session.history.add_user("lost")
    spoil(session, how)
    with pytest.raises(error):
        await turn.__aexit__(None, None, None)
    assert session.version == 1  # the session object was not advanced either
    assert await engine.store.load("alice") == before
    async with asyncio.timeout(1), engine.turn("alice") as session:
        assert session.state == "waiting_location"


@pytest.mark.parametrize(
    ("content", "error"),
    [("x" * 4001, TextTooLong), (b"bytes", InvalidHistory), ([{"type": "audio"}], InvalidHistory)],
)
async def test_refused_history_content_fails_the_turn_and_writes_nothing(
    engine: SessionEngine, content: Any, error: type[InvalidInput]
) -> None:
    await say(engine, "alice", "kept")
    before = await engine.store.load("alice")
    with pytest.raises(error):
        async with engine.turn("alice") as session:
            session.history.add_user(content)
    assert await engine.store.load("alice") == before


class FailingCommits(MemorySessionStore):
    """A memory store whose commits fail (as a store that went away would)."""

    def __init__(self, clock: FakeClock, error: Exception) -> None:
        super().__init__(clock=clock)
        self.error = error

    async def commit(
        self, lease: Lease, blob: bytes | None, *, expires_at: float, keep_until: float
    ) -> None:
        raise self.error


@pytest.mark.parametrize("error", [StoreUnavailable("redis went away"), LockLost("lost")])
async def test_a_store_error_at_commit_propagates_and_releases_the_lock(
    clock: FakeClock, error: Exception
) -> None:
    store = FailingCommits(clock, error)
    engine = SessionEngine(store, EngineConfig(), clock=clock)
    with pytest.raises(type(error)):
        async with engine.turn("alice") as session:
            session.history.add_user("x")
    assert store.locked_users == 0
    assert session.version == 0


async def test_a_turn_object_cannot_be_entered_twice(engine: SessionEngine) -> None:
    turn = engine.turn("alice")
    async with turn:
        with pytest.raises(RuntimeError, match="twice"):
            await turn.__aenter__()
    with pytest.raises(RuntimeError, match="not entered"):
        await turn.__aexit__(None, None, None)


# -- user ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["", "x" * 65, "a b", None])
async def test_bad_user_ids_are_refused_everywhere(engine: SessionEngine, user_id: Any) -> None:
    with pytest.raises(InvalidUserId):
        engine.turn(user_id)
    with pytest.raises(InvalidUserId):
        await engine.peek(user_id)
    with pytest.raises(InvalidUserId):
        await engine.get_live(user_id)
    with pytest.raises(InvalidUserId):
        await engine.clear(user_id)
    with pytest.raises(InvalidUserId):
        await engine.reset(user_id)
    assert await engine.active_count() == 0


# -- expiry ------------------------------------------------------------------------------------


async def test_expiry_slides_with_every_turn(engine: SessionEngine, clock: FakeClock) -> None:
    await say(engine, "alice", "one")
    for _ in range(5):
        clock.advance(TTL - 1)  # 5 x 599 s: far beyond one TTL in total, never idle for one
        await say(engine, "alice", "again")
    assert len(await stored_texts(engine, "alice")) == 6


async def test_a_session_idle_for_the_ttl_is_gone(engine: SessionEngine, clock: FakeClock) -> None:
    async with engine.turn("alice") as session:
        session.history.add_user("hello")
    clock.advance(TTL)
    async with engine.turn("alice") as session:
        assert len(session.history) == 0
        assert session.expired_from is None  # it was idle: nothing was lost
        assert session.version == 1  # versions keep growing across an expiry
        assert session.created_at == clock()


async def test_a_session_that_expired_mid_report_says_what_was_lost(
    engine: SessionEngine, clock: FakeClock
) -> None:
    async with engine.turn("alice") as session:
        session.history.add_user("photo")
        session.state = "waiting_confirm"
        session.slots.analysis = "blocked exit"
        session.slots.image_key = "m/1.jpg"
    expired_at = clock() + TTL
    clock.advance(TTL + 30)
    await engine.purge_expired()  # a sweep between: the record is kept for the notice
    async with engine.turn("alice") as session:
        lost = session.expired_from
        assert lost is not None
        assert (lost.state, lost.slots.analysis, lost.slots.image_key) == (
            "waiting_confirm",
            "blocked exit",
            "m/1.jpg",
        )
        assert lost.expired_at == expired_at
        assert (session.state, session.slots, len(session.history)) == ("idle", Slots(), 0)
        session.history.add_user("确认")
    async with engine.turn("alice") as session:
        assert session.expired_from is None  # noticed once, never stored


async def test_an_expiry_notice_survives_a_failed_turn(
    engine: SessionEngine, clock: FakeClock
) -> None:
    async with engine.turn("alice") as session:
        session.state = "waiting_location"
    clock.advance(TTL + 1)

    async def failing() -> None:
        async with engine.turn("alice") as session:
            assert session.expired_from is not None
            raise RuntimeError("the reply could not be sent")

    with pytest.raises(RuntimeError):
        await failing()
    async with engine.turn("alice") as session:
        assert session.expired_from is not None


async def test_a_pending_session_is_forgotten_after_the_notice_grace(clock: FakeClock) -> None:
    engine = make_engine(clock, notice_grace_seconds=100)
    async with engine.turn("alice") as session:
        session.state = "waiting_location"
    clock.advance(TTL + 101)
    await engine.purge_expired()
    assert await engine.peek("alice") is None
    async with engine.turn("alice") as session:
        assert session.expired_from is None


async def test_the_clock_never_goes_back_for_the_engine(
    engine: SessionEngine, clock: FakeClock
) -> None:
    await say(engine, "alice", "x")
    first = engine.now()
    clock.now -= 3600  # an NTP step backwards
    assert engine.now() == first
    async with engine.turn("alice") as session:
        assert session.updated_at == first


# -- reading without touching ------------------------------------------------------------------


async def test_peek_does_not_refresh_expiry(engine: SessionEngine, clock: FakeClock) -> None:
    await say(engine, "alice", "hello")
    clock.advance(TTL - 1)
    info = await engine.peek("alice")
    assert info is not None
    assert not info.expired
    clock.advance(1)
    info = await engine.peek("alice")
    assert info is not None
    assert info.expired
    with pytest.raises(SessionNotFound):
        await engine.get_live("alice")


async def test_peek_and_get_live_of_a_stranger(engine: SessionEngine) -> None:
    assert await engine.peek("nobody") is None
    with pytest.raises(SessionNotFound, match="nobody"):
        await engine.get_live("nobody")


async def test_peek_does_not_wait_for_a_running_turn(engine: SessionEngine) -> None:
    await say(engine, "alice", "committed")
    async with engine.turn("alice") as session:
        session.history.add_user("in progress")
        async with asyncio.timeout(1):
            live = await engine.get_live("alice")
        assert [m.text for m in live.history] == ["committed"]


async def test_peeked_sessions_are_copies(engine: SessionEngine) -> None:
    await say(engine, "alice", "x")
    info = await engine.peek("alice")
    assert info is not None
    info.session.history.add_user("not stored")
    info.session.state = "waiting_confirm"
    assert await stored_texts(engine, "alice") == ["x"]


async def test_active_count_and_paged_listing(engine: SessionEngine, clock: FakeClock) -> None:
    for name in ["dave", "alice", "carol", "bob", "erin"]:
        await say(engine, name, "hi")
        clock.advance(100)
    # dave is 500 s old, erin 100 s
    assert await engine.active_count() == 5
    first = await engine.list_active(limit=2)
    assert [s.user_id for s in first.sessions] == ["alice", "bob"]
    assert first.next_cursor == "bob"
    second = await engine.list_active(first.next_cursor, limit=2)
    assert [s.user_id for s in second.sessions] == ["carol", "dave"]
    third = await engine.list_active(second.next_cursor, limit=2)
    assert [s.user_id for s in third.sessions] == ["erin"]
    assert third.next_cursor is None
    clock.advance(200)  # dave and alice expire (alice exactly now)
    assert await engine.active_count() == 3
    page = await engine.list_active()
    assert [s.user_id for s in page.sessions] == ["bob", "carol", "erin"]


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_listing_refuses_a_bad_limit(engine: SessionEngine, limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await engine.list_active(limit=limit)


async def test_listing_refuses_a_bad_cursor(engine: SessionEngine) -> None:
    with pytest.raises(InvalidUserId):
        await engine.list_active("not a user id")


# -- clear and reset ---------------------------------------------------------------------------


async def test_clear_deletes_state_slots_and_history(engine: SessionEngine) -> None:
    async with engine.turn("alice") as session:
        session.history.add_user("x")
        session.state = "waiting_confirm"
    assert await engine.clear("alice") is True
    assert await engine.peek("alice") is None
    assert await engine.clear("alice") is False
    assert await engine.active_count() == 0
    async with engine.turn("alice") as session:
        assert (session.state, len(session.history), session.expired_from) == ("idle", 0, None)


async def test_clear_waits_for_a_running_turn(engine: SessionEngine) -> None:
    order: list[str] = []
    entered, clearing = asyncio.Event(), asyncio.Event()

    async def turn() -> None:
        async with engine.turn("alice") as session:
            entered.set()
            # clear() runs until it waits for the lock before this wakes up (memory store)
            await clearing.wait()
            session.history.add_user("x")
            order.append("turn")

    async def clear() -> None:
        await entered.wait()
        clearing.set()
        await engine.clear("alice")
        order.append("clear")

    await asyncio.gather(turn(), clear())
    assert order == ["turn", "clear"]
    assert await engine.peek("alice") is None


async def test_reset_keeps_history_and_empties_the_rest(engine: SessionEngine) -> None:
    async with engine.turn("alice") as session:
        session.history.add_user("x")
        session.state = "waiting_close_photo"
        session.slots.order_id = "o-1"
    await engine.reset("alice")
    info = await engine.peek("alice")
    assert info is not None
    assert (info.session.state, info.session.slots) == ("idle", Slots())
    assert [m.text for m in info.session.history] == ["x"]


# -- concurrency -------------------------------------------------------------------------------


async def test_one_users_turns_run_one_at_a_time_in_arrival_order(engine: SessionEngine) -> None:
    running = 0
    served: list[int] = []

    async def turn(i: int) -> None:
        nonlocal running
        async with engine.turn("alice") as session:
            running += 1
            assert running == 1
            last = int(session.history.messages()[-1].text) if len(session.history) else 0
            await asyncio.sleep(0)  # a VLM call would be here
            session.history.add_user(str(last + 1))
            served.append(i)
            running -= 1

    await asyncio.gather(*(turn(i) for i in range(50)))
    assert served == list(range(50))
    info = await engine.peek("alice")
    assert info is not None
    assert info.session.version == 50
    assert [m.text for m in info.session.history] == [str(n) for n in range(41, 51)]


async def test_different_users_never_wait_for_each_other(engine: SessionEngine) -> None:
    release = asyncio.Event()
    holding = asyncio.Event()

    async def alice() -> None:
        async with engine.turn("alice") as session:
            holding.set()
            await release.wait()
            session.history.add_user("late")

    task = asyncio.create_task(alice())
    await holding.wait()
    async with asyncio.timeout(1):
        await say(engine, "bob", "not blocked")
    release.set()
    await task
    assert await stored_texts(engine, "bob") == ["not blocked"]


async def test_a_lock_wait_that_runs_out_raises_busy(clock: FakeClock) -> None:
    engine = make_engine(clock, lock_timeout_seconds=0.05)
    async with engine.turn("alice"):
        with pytest.raises(SessionBusy, match="busy"):
            async with engine.turn("alice"):
                pass
    await say(engine, "alice", "free again")


# -- sweeping ----------------------------------------------------------------------------------


async def test_the_sweeper_purges_expired_sessions_in_the_background(
    engine: SessionEngine, clock: FakeClock
) -> None:
    for i in range(1000):
        await say(engine, f"u{i}", "x")
    store = engine.store
    assert isinstance(store, MemorySessionStore)
    clock.advance(TTL + 1)
    sweeper = asyncio.create_task(engine.run_sweeper(interval_seconds=0.01, batch=64))
    try:
        async with asyncio.timeout(30):  # a generous bound: it takes milliseconds
            while len(store):
                await asyncio.sleep(0.005)
    finally:
        sweeper.cancel()
    assert await engine.active_count() == 0


class FlakyPurge(MemorySessionStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.failures = 2

    async def purge_expired(self, now: float, limit: int) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("redis is restarting")
        return await super().purge_expired(now, limit)


async def test_the_sweeper_survives_a_store_that_fails(clock: FakeClock) -> None:
    store = FlakyPurge(clock)
    engine = SessionEngine(store, EngineConfig(ttl_seconds=TTL), clock=clock)
    await say(engine, "alice", "x")
    clock.advance(TTL + 1)
    sweeper = asyncio.create_task(engine.run_sweeper(interval_seconds=0.01))
    try:
        async with asyncio.timeout(30):  # a generous bound: it takes milliseconds
            while len(store):
                await asyncio.sleep(0.005)
    finally:
        sweeper.cancel()
    assert store.failures == 0


# -- robustness --------------------------------------------------------------------------------


async def test_an_unreadable_record_does_not_lock_its_user_out(
    engine: SessionEngine, clock: FakeClock
) -> None:
    lease = await engine.store.acquire("alice", timeout=1)
    await engine.store.commit(
        lease, b"\xc1garbage", expires_at=clock() + TTL, keep_until=clock() + TTL
    )
    assert await engine.peek("alice") is None
    assert (await engine.list_active()).sessions == []
    async with engine.turn("alice") as session:
        assert (session.state, len(session.history)) == ("idle", 0)
        session.history.add_user("fresh start")
    assert await stored_texts(engine, "alice") == ["fresh start"]


@pytest.mark.parametrize(
    "config",
    [
        {"ttl_seconds": 0},
        {"max_turns": 0},
        {"max_text_chars": 0},
        {"lock_timeout_seconds": 0},
        {"notice_grace_seconds": -1},
    ],
)
def test_a_config_that_cannot_work_is_refused(config: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|cannot"):
        EngineConfig(**config)  # type: ignore[arg-type]


async def test_the_vision_view_of_a_live_session(engine: SessionEngine) -> None:
    async with engine.turn("alice") as session:
        for i in range(3):
            session.history.add_user([ImagePart(f"m/{i}.jpg", "image/jpeg", 1, 1, 1), f"p{i}"])
        view = session.history_for_vision()
        images = [p.key for m in view for p in m.content if isinstance(p, ImagePart)]
        assert images == ["m/2.jpg"]
        assert sum(TextPart("[earlier photo, not shown]") in m.content for m in view) == 2
