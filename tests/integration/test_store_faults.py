"""Faults: a lock holder killed with SIGKILL, redis-server stopped under load, a process killed in
the middle of its commits. Every one must end with sessions intact and the store usable."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from snapreport.errors import SessionBusy, StoreUnavailable
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.session.stores.sqlite import SqliteSessionStore
from tests.harness.redis_server import RedisServer
from tests.integration._store_processes import Worker

LOCK_TTL = 1.0
BOUND = 30.0  # seconds: generous bounds for what takes a fraction of that on an idle machine


def backend_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        return ["--backend", "redis", "--target", url, "--prefix", prefix]
    return ["--backend", "sqlite", "--target", str(tmp_path / "sessions.db")]


def open_store(args: list[str], lock_ttl: float) -> SessionStore:
    backend, target = args[1], args[3]
    if backend == "redis":
        return RedisSessionStore.from_url(target, prefix=args[5], lock_ttl=lock_ttl)
    return SqliteSessionStore(target, lock_ttl=lock_ttl)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_a_killed_lock_holder_is_replaced_once_its_lock_ttl_passes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    args = backend_target(backend, request, tmp_path)
    store = open_store(args, lock_ttl=LOCK_TTL)
    # the lock wait bounds the take-over: far longer than LOCK_TTL, far shorter than forever
    engine = SessionEngine(store, EngineConfig(lock_timeout_seconds=BOUND))
    holder = Worker("hold", *args, "--user", "alice", "--lock-ttl", str(LOCK_TTL),
                    log=tmp_path / "holder.log")  # fmt: skip
    try:
        async with engine.turn("alice") as session:
            session.history.add_user("before the crash")
            session.state = "waiting_location"
        holder.expect("ready")
        holder.go()
        holder.expect("locked")
        await asyncio.sleep(LOCK_TTL * 2.5)  # alive: its renewals keep the lock
        with pytest.raises(SessionBusy):
            await store.acquire("alice", timeout=0.3)
        holder.kill()
        async with engine.turn("alice") as session:  # SessionBusy if the lock were never freed
            assert [m.text for m in session.history] == ["before the crash"]
            assert session.state == "waiting_location"
            assert session.version == 1
            session.history.add_user("after the crash")
        info = await engine.peek("alice")
        assert info is not None
        assert [m.text for m in info.session.history] == ["before the crash", "after the crash"]
    finally:
        holder.kill()
        await store.aclose()


async def test_stopping_redis_fails_turns_fast_and_they_recover_when_it_is_back(
    redis_server: RedisServer,
) -> None:
    store = RedisSessionStore.from_url(redis_server.url, prefix="faults", lock_ttl=LOCK_TTL)
    lock_wait = 10.0
    engine = SessionEngine(store, EngineConfig(lock_timeout_seconds=lock_wait))
    users = [f"user{u}" for u in range(8)]
    successes: Counter[str] = Counter()
    outcomes: list[tuple[str, float, str]] = []  # (phase it started in, seconds, outcome)
    phase = "up"
    running = True

    async def load(user: str) -> None:
        while running:
            started, started_in = time.monotonic(), phase
            try:
                async with engine.turn(user) as session:
                    n = session.version + 1
                    session.history.add_user(f"{n}")
                    session.slots.location = f"{n}"
                successes[user] += 1
                outcome = "ok"
            except StoreUnavailable:
                outcome = "unavailable"
            except Exception as exc:  # anything else is a failure of the test
                outcome = f"{type(exc).__name__}: {exc}"
            outcomes.append((started_in, time.monotonic() - started, outcome))
            await asyncio.sleep(0.01 if outcome == "ok" else 0.05)

    def ended_in(phase: str, outcome: str) -> int:
        return sum(1 for p, _, o in outcomes if p == phase and o == outcome)

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(BOUND):
            while not condition():
                await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(load(user)) for user in users]
    try:
        await until(lambda: all(successes[user] for user in users))
        phase = "stopping"
        await asyncio.to_thread(redis_server.stop)
        phase = "down"
        await until(lambda: ended_in("down", "unavailable") + ended_in("down", "ok") >= 3 * 8)
        phase = "restarting"
        await asyncio.to_thread(redis_server.start)
        phase = "back"
        before = dict(successes)
        # every user turns again: locks orphaned by the outage expire within LOCK_TTL
        await until(lambda: all(successes[user] > before[user] for user in users))
    finally:
        running = False
        await asyncio.gather(*tasks)

    odd = [o for o in outcomes if o[2] not in ("ok", "unavailable")]
    assert not odd, odd
    down = [o for o in outcomes if o[0] == "down"]
    assert down, "no turn ran while redis was down"
    assert all(o[2] == "unavailable" for o in down)
    # fast: a failure is the refused connection, not a wait for the user's lock to time out
    assert max(seconds for p, seconds, _ in outcomes if p == "down") < lock_wait / 2
    assert max(seconds for _, seconds, _ in outcomes) < lock_wait + LOCK_TTL, "a turn hung"

    for user in users:
        info = await engine.peek(user)
        assert info is not None
        session = info.session
        # nothing partial: every record is whole and self-consistent
        assert session.slots.location == str(session.version)
        texts = [m.text for m in session.history]
        assert texts == [
            str(n) for n in range(session.version - len(texts) + 1, session.version + 1)
        ]
        # acknowledged turns are all there (a failed one may still have committed)
        assert session.version >= successes[user] > 0
    await store.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_a_process_killed_mid_commit_leaves_the_old_or_the_new_session(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    args = backend_target(backend, request, tmp_path)
    store = open_store(args, lock_ttl=LOCK_TTL)
    engine = SessionEngine(store)
    rng = random.Random(7)
    versions = {f"user{u:03d}": 0 for u in range(3)}
    try:
        for round_ in range(4):
            worker = Worker("churn", *args, "--users", "3", "--lock-ttl", str(LOCK_TTL),
                            log=tmp_path / f"churn{round_}.log")  # fmt: skip
            try:
                worker.expect("ready")
                worker.go()
                worker.expect("running", timeout=30)
                await asyncio.sleep(rng.uniform(0.05, 0.4))
            finally:
                worker.kill()
            for user, before in versions.items():
                info = await engine.peek(user)
                assert info is not None
                session = info.session
                version = session.version
                assert version >= before
                assert session.slots.location == f"v{version}"
                assert session.slots.analysis.startswith(f"v{version}:")
                texts = [m.text for m in session.history]
                assert texts[-2].startswith(f"v{version}:")
                assert texts[-1] == f"v{version}"
                versions[user] = version
        assert all(v > 0 for v in versions.values())
    finally:
        await store.aclose()


async def test_a_flushed_script_cache_is_reloaded(redis_url: str, redis_prefix: str) -> None:
    """EVALSHA answered NOSCRIPT (a restarted or failed-over server): the turn still runs."""
    store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    engine = SessionEngine(store)
    admin = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    try:
        async with engine.turn("alice") as session:
            session.history.add_user("one")
        await admin._redis.script_flush()
        async with engine.turn("alice") as session:
            session.history.add_user("two")
        info = await engine.peek("alice")
        assert info is not None
        assert [m.text for m in info.session.history] == ["one", "two"]
    finally:
        await admin.aclose()
        await store.aclose()
