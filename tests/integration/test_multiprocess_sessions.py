"""Four OS processes share one SQLite file or one Redis: 50 users x 20 concurrent turns each.

Every session must end with all 80 turns applied exactly once (version 80), its history the last
10 of them in order, and within each process a user's turns served in the order they started.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from snapreport.session.engine import SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.session.stores.sqlite import SqliteSessionStore
from tests.integration._store_processes import Worker

PROCESSES = 4
USERS = 50
TURNS = 20
KEPT = 10


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_four_processes_keep_every_turn_once_and_in_order(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "redis":
        target = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    else:
        target, prefix = str(tmp_path / "sessions.db"), ""
    args = ["--backend", backend, "--target", target, "--prefix", prefix or "x"]
    job = [*args, "--users", str(USERS), "--turns", str(TURNS)]
    workers = [
        Worker("turns", *job, "--proc", str(p), log=tmp_path / f"worker{p}.log")
        for p in range(PROCESSES)
    ]
    try:
        for worker in workers:
            worker.expect("ready")
        for worker in workers:
            worker.go()
        reports = [json.loads(worker.expect("{", timeout=240)) for worker in workers]
        for worker in workers:
            assert worker.wait(30) == 0, worker.stderr()
    finally:
        for worker in workers:
            worker.kill()

    by_user: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)  # seq -> (proc, i)
    for proc, report in enumerate(reports):
        assert len(report["turns"]) == USERS * TURNS
        per_user: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for user, i, seq in report["turns"]:
            assert seq not in by_user[user], f"{user}: turn {seq} applied twice"
            by_user[user][seq] = (proc, i)
            per_user[user].append((i, seq))
        for user, done in per_user.items():
            seqs = [seq for _, seq in sorted(done)]
            assert seqs == sorted(seqs), f"{user}: process {proc} served out of arrival order"

    total = PROCESSES * TURNS
    store: SessionStore
    if backend == "redis":
        store = RedisSessionStore.from_url(target, prefix=prefix)
    else:
        store = SqliteSessionStore(target)
    engine = SessionEngine(store)
    try:
        assert await engine.active_count() == USERS
        for u in range(USERS):
            user = f"user{u:03d}"
            assert sorted(by_user[user]) == list(range(1, total + 1)), f"{user}: lost turns"
            info = await engine.peek(user)
            assert info is not None
            assert info.session.version == total
            expected = []
            for seq in range(total - KEPT + 1, total + 1):
                proc, i = by_user[user][seq]
                expected += [f"{seq}:{proc}:{i}", f"ok {seq}"]
            assert [m.text for m in info.session.history] == expected
    finally:
        await store.aclose()
