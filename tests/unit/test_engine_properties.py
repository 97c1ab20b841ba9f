"""Property tests: random programs of turns, resets, clears, sweeps and clock jumps, checked
against a plain model of what the engine promises, and random interleavings of concurrent turns.

- history never holds more than ``max_turns`` turns and never starts with an assistant message;
- an expired session is never returned as live (by a turn, ``peek``, ``get_live``, counting
  or listing), and one that expired mid-report says so exactly once;
- a turn that fails writes nothing, and the error is the specific one;
- concurrent turns of one user run one at a time in arrival order and never lose an update;
- users are independent.

Each property runs on every store (memory, SQLite, Redis on the harness's real redis-server),
each example on a fresh store: a new SQLite file, a new Redis key prefix. The shared stores
take a few milliseconds per example, so they run fewer examples than memory does.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from snapreport.errors import (
    InvalidHistory,
    InvalidSlotValue,
    InvalidState,
    SessionNotFound,
    TextTooLong,
)
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.model import Session
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.memory import MemorySessionStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.session.stores.sqlite import SqliteSessionStore
from tests.harness.clock import FakeClock

TTL = 100.0
GRACE = 50.0
MAX_TURNS = 3
MAX_TEXT = 20
USERS = ["ann", "bob", "cy"]
PENDING = ["waiting_location", "waiting_confirm", "waiting_close_photo"]

STORES = ["memory", "sqlite", "redis"]
EXAMPLES = {"memory": 150, "sqlite": 60, "redis": 100}  # the suite's time, not the promise
LOCK_WAIT = 10.0  # a lock left held fails the check after this long, not the run


def store_settings(kind: str) -> settings:
    return settings(
        max_examples=EXAMPLES[kind],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@contextlib.asynccontextmanager
async def open_store(kind: str, clock: FakeClock, redis_url: str) -> AsyncIterator[SessionStore]:
    """A fresh, empty store of ``kind`` on the fake clock."""
    store: SessionStore
    with tempfile.TemporaryDirectory(prefix="engine-props-") as directory:
        if kind == "memory":
            store = MemorySessionStore(clock=clock)
        elif kind == "sqlite":
            store = SqliteSessionStore(Path(directory) / "sessions.db", clock=clock)
        else:
            prefix = f"props{uuid.uuid4().hex[:12]}"
            store = RedisSessionStore.from_url(redis_url, prefix=prefix, clock=clock)
        try:
            yield store
        finally:
            await store.aclose()


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(kind: str, request: pytest.FixtureRequest) -> str:
    """The harness's redis-server for the Redis runs (started once per test session)."""
    return str(request.getfixturevalue("redis_url")) if kind == "redis" else ""


# -- the model ----------------------------------------------------------------------------------


@dataclass
class Model:
    """What one user's stored session should be."""

    state: str = "idle"
    analysis: str = ""
    turns: list[list[str]] = field(default_factory=list)
    version: int | None = 0  # None: unknown (a record purged at expiry restarts at 0)
    updated_at: float = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.updated_at + TTL

    def add(self, role: str, text: str) -> None:
        if role == "user":
            self.turns.append([text])
            del self.turns[:-MAX_TURNS]
        else:
            assert self.turns
            self.turns[-1].append(text)


def session_texts(session: Session) -> list[list[str]]:
    return [[m.text for m in turn] for turn in session.history.turns]


def check_history(session: Session) -> None:
    turns = session.history.turns
    assert len(turns) <= MAX_TURNS
    for turn in turns:
        assert turn, "an empty turn"
        assert turn[0].role == "user"
        assert all(m.role == "assistant" for m in turn[1:])


# -- programs -----------------------------------------------------------------------------------

texts = st.text(alphabet="abc 你好", min_size=1, max_size=8)
steps = st.one_of(
    st.tuples(st.just("user"), texts),
    st.tuples(st.just("assistant"), texts),
    st.tuples(st.just("state"), st.sampled_from(["idle", *PENDING])),
    st.tuples(st.just("analysis"), texts),
    st.tuples(st.just("reset"), st.just("")),
    st.tuples(st.just("clear"), st.just("")),
)
failures = st.sampled_from([None, None, None, "raise", "bad_state", "bad_slot", "long_text"])
ops = st.one_of(
    st.tuples(st.just("turn"), st.sampled_from(USERS), st.lists(steps, max_size=5), failures),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 30.0, TTL - 1, TTL, TTL + 1, GRACE + TTL])),
    st.tuples(st.just("engine_reset"), st.sampled_from(USERS)),
    st.tuples(st.just("engine_clear"), st.sampled_from(USERS)),
    st.tuples(st.just("purge"), st.integers(1, 5)),
)


class Checker:
    def __init__(self, store: SessionStore, clock: FakeClock) -> None:
        self.clock = clock
        self.store = store
        self.engine = SessionEngine(
            self.store,
            EngineConfig(
                ttl_seconds=TTL,
                max_turns=MAX_TURNS,
                max_text_chars=MAX_TEXT,
                notice_grace_seconds=GRACE,
            ),
            clock=self.clock,
        )
        self.models: dict[str, Model] = {}

    def opened(self, user: str) -> tuple[Model, Model | None]:
        """The model a turn should see, and the expired pending one it should report."""
        now = self.clock()
        old = self.models.get(user)
        if old is None:
            return Model(updated_at=now), None
        if not old.expired(now):
            return Model(
                old.state, old.analysis, [list(t) for t in old.turns], old.version, old.updated_at
            ), None
        kept = old.state != "idle" and now < old.updated_at + TTL + GRACE
        # the record may or may not have been purged yet: the version is then unknown
        fresh = Model(updated_at=now, version=None)
        return fresh, (old if kept else None)

    async def turn(self, user: str, program: list[tuple[str, str]], failure: str | None) -> None:
        want, lost = self.opened(user)
        failed: type[Exception] | None = None
        try:
            async with self.engine.turn(user) as session:
                # an expired session is never handed out as live
                assert session.state == want.state
                assert session.slots.analysis == want.analysis
                assert session_texts(session) == want.turns
                if want.version is not None:
                    assert session.version == want.version
                if lost is None:
                    if want.version is not None:
                        assert session.expired_from is None
                else:
                    assert session.expired_from is not None
                    assert session.expired_from.state == lost.state
                    assert session.expired_from.slots.analysis == lost.analysis
                for kind, value in program:
                    if kind in ("user", "assistant"):
                        if kind == "assistant" and not want.turns:
                            failed = InvalidHistory
                        session.history.add(kind, value)  # raises if it must
                        want.add(kind, value)
                    elif kind == "state":
                        session.state = value  # type: ignore[assignment]
                        want.state = value
                    elif kind == "analysis":
                        session.slots.analysis = value
                        want.analysis = value
                    elif kind == "reset":
                        session.reset()
                        want.state, want.analysis = "idle", ""
                    else:
                        session.clear()
                        want.state, want.analysis, want.turns = "idle", "", []
                    check_history(session)
                if failure == "raise":
                    failed = RuntimeError
                    raise RuntimeError("the handler failed")
                if failure == "bad_state":
                    failed = InvalidState
                    session.state = "nowhere"  # type: ignore[assignment]
                elif failure == "bad_slot":
                    failed = InvalidSlotValue
                    session.slots.alarm_id = 7  # type: ignore[assignment]
                elif failure == "long_text":
                    failed = TextTooLong
                    session.history.add_user("x" * (MAX_TEXT + 1))
        except Exception as exc:
            raised: Exception | None = exc
        else:
            raised = None
        if raised is not None:
            assert type(raised) is failed, f"{raised!r} where {failed} was expected"
            return  # nothing written: the model stays as it was
        assert failed is None
        want.version = session.version
        want.updated_at = self.clock()
        self.models[user] = want

    async def run(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "turn":
            await self.turn(op[1], op[2], op[3])
        elif kind == "advance":
            self.clock.advance(op[1])
        elif kind == "engine_reset":
            await self.turn(op[1], [("reset", "")], None)
        elif kind == "engine_clear":
            existed = await self.engine.clear(op[1])
            model = self.models.pop(op[1], None)
            if model is not None and not model.expired(self.clock()):
                assert existed
            if model is None:
                assert not existed
        else:
            for _ in range(op[1]):
                await self.engine.purge_expired(limit=2)

    async def check(self) -> None:
        now = self.clock()
        live = sorted(u for u, m in self.models.items() if not m.expired(now))
        for user in USERS:
            model = self.models.get(user)
            info = await self.engine.peek(user)
            if model is None:
                assert info is None
                continue
            if model.expired(now):
                assert info is None or info.expired
                try:
                    await self.engine.get_live(user)
                except SessionNotFound:
                    pass
                else:
                    raise AssertionError("an expired session was returned as live")
                continue
            assert info is not None
            assert not info.expired
            assert info.expires_at == model.updated_at + TTL
            session = info.session
            check_history(session)
            assert (session.state, session.slots.analysis) == (model.state, model.analysis)
            assert session_texts(session) == model.turns
            if model.version is not None:
                assert session.version == model.version
        assert await self.engine.active_count() == len(live)
        listed: list[str] = []
        cursor = None
        while True:
            page = await self.engine.list_active(cursor, limit=2)
            listed += [s.user_id for s in page.sessions]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert listed == live
        for user in USERS:  # every turn gave its lock back, the failed ones too
            lease = await self.store.acquire(user, timeout=LOCK_WAIT)
            await self.store.release(lease)


def test_random_programs_match_the_model(kind: str, store_url: str) -> None:
    @store_settings(kind)
    @given(program=st.lists(ops, max_size=40))
    def run(program: list[tuple[Any, ...]]) -> None:
        async def main() -> None:
            clock = FakeClock()
            async with open_store(kind, clock, store_url) as store:
                checker = Checker(store, clock)
                for op in program:
                    await checker.run(op)
                    await checker.check()

        asyncio.run(main())

    run()


# -- concurrency --------------------------------------------------------------------------------

arrivals = st.lists(
    st.tuples(
        st.sampled_from(USERS),  # whose message
        st.integers(0, 3),  # how many times the handler awaits inside the turn
        st.booleans(),  # whether the handler fails
        st.integers(0, 2),  # how many loop steps pass before the next message arrives
    ),
    min_size=1,
    max_size=40,
)


def test_concurrent_turns_never_lose_an_update(kind: str, store_url: str) -> None:
    """Each turn reads the last number in its user's history, awaits (as a VLM call would),
    then appends that number plus one. Clock jumps stay within the TTL in total. Arrival order
    is the order the turns call the store: one store instance sends one user's acquires in
    that order (Redis: one after the other; SQLite: its one worker thread)."""

    @store_settings(kind)
    @given(arrivals=arrivals, jumps=st.lists(st.floats(0, TTL / 10), max_size=5))
    def run(arrivals: list[tuple[str, int, bool, int]], jumps: list[float]) -> None:
        async def main() -> None:
            clock = FakeClock()
            async with open_store(kind, clock, store_url) as store:
                await check_concurrent_turns(store, clock, arrivals, jumps)

        asyncio.run(main())

    run()


async def check_concurrent_turns(
    store: SessionStore,
    clock: FakeClock,
    arrivals: list[tuple[str, int, bool, int]],
    jumps: list[float],
) -> None:
    engine = SessionEngine(
        store, EngineConfig(ttl_seconds=TTL, lock_timeout_seconds=LOCK_WAIT), clock=clock
    )
    served: dict[str, list[int]] = {u: [] for u in USERS}
    written: dict[str, list[int]] = {u: [] for u in USERS}
    jump_left = list(jumps)

    async def turn(i: int, user: str, awaits: int, fail: bool) -> None:
        try:
            async with engine.turn(user) as session:
                served[user].append(i)
                messages = session.history.messages()
                last = int(messages[-1].text) if messages else 0
                for _ in range(awaits):
                    await asyncio.sleep(0)
                    if jump_left:
                        clock.advance(jump_left.pop())
                session.history.add_user(str(last + 1))
                if fail:
                    raise RuntimeError("the VLM call failed")
                written[user].append(last + 1)
        except RuntimeError:
            pass

    tasks = []
    for i, (user, awaits, fail, gap) in enumerate(arrivals):
        tasks.append(asyncio.create_task(turn(i, user, awaits, fail)))
        for _ in range(gap):
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)

    for user in USERS:
        mine = [i for i, a in enumerate(arrivals) if a[0] == user]
        assert served[user] == mine  # one at a time, in arrival order
        done = written[user]
        assert done == list(range(1, len(done) + 1))  # no update lost, none repeated
        info = await engine.peek(user)
        if not done:
            assert info is None
            continue
        assert info is not None
        assert info.session.version == len(done)
        numbers = [int(m.text) for m in info.session.history]
        assert numbers == done[-10:]  # users are independent: only their own turns
