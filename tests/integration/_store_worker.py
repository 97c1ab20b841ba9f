"""A worker process for the store tests: ``python -m tests.integration._store_worker JOB``.

It opens a session store (``--backend sqlite|redis``, ``--target`` a file or a URL), says
``ready`` on stdout, waits for ``go`` on stdin, then does one job:

- ``turns``: for each of ``--users`` users, ``--turns`` concurrent engine turns started in
  order; turn ``i`` appends the user message ``"<seq>:<proc>:<i>"`` where ``seq`` is the
  session's version plus one. Prints one JSON line: ``{"turns": [[user, i, seq], ...]}``.
- ``hold``: takes ``--user``'s lock, prints ``locked`` and sleeps (for SIGKILL).
- ``churn``: turn after turn on ``--users`` users, each writing a large session whose parts all
  carry the new version (so a torn write would show); prints ``running`` after the first
  round, then goes on until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.session.stores.sqlite import SqliteSessionStore

BIG = "x" * 3000


def open_store(args: argparse.Namespace) -> SessionStore:
    if args.backend == "sqlite":
        return SqliteSessionStore(args.target, lock_ttl=args.lock_ttl)
    # 200 turns at once from each of four processes open many connections together: on a
    # loaded 2-core machine a connect can take longer than the production default allows
    return RedisSessionStore.from_url(
        args.target, prefix=args.prefix, lock_ttl=args.lock_ttl, connect_timeout=30.0
    )


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_for_go() -> None:
    say("ready")
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go', got {line!r}")


async def turns(engine: SessionEngine, args: argparse.Namespace) -> None:
    done: list[tuple[str, int, int]] = []

    async def one(user: str, i: int) -> None:
        async with engine.turn(user) as session:
            seq = session.version + 1
            session.history.add_user(f"{seq}:{args.proc}:{i}")
            session.history.add_assistant(f"ok {seq}")
        done.append((user, i, seq))

    tasks = []
    for i in range(args.turns):
        for u in range(args.users):
            tasks.append(asyncio.create_task(one(f"user{u:03d}", i)))
    await asyncio.gather(*tasks)
    say(json.dumps({"turns": done}))


async def hold(engine: SessionEngine, args: argparse.Namespace) -> None:
    await engine.store.acquire(args.user, timeout=30)
    say("locked")
    await asyncio.sleep(3600)


async def churn(engine: SessionEngine, args: argparse.Namespace) -> None:
    rounds = 0
    while True:
        for u in range(args.users):
            async with engine.turn(f"user{u:03d}") as session:
                version = session.version + 1
                session.slots.location = f"v{version}"
                session.slots.analysis = f"v{version}:{BIG}"
                session.history.add_user(f"v{version}:{BIG}")
                session.history.add_assistant(f"v{version}")
        rounds += 1
        if rounds == 1:
            say("running")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["turns", "hold", "churn"])
    parser.add_argument("--backend", choices=["sqlite", "redis"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--prefix", default="snapreport")
    parser.add_argument("--proc", type=int, default=0)
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--turns", type=int, default=1)
    parser.add_argument("--user", default="user000")
    parser.add_argument("--lock-ttl", type=float, default=60.0)
    args = parser.parse_args()
    store = open_store(args)
    engine = SessionEngine(store, EngineConfig(lock_timeout_seconds=120))
    try:
        await store.ping()
        await wait_for_go()
        await {"turns": turns, "hold": hold, "churn": churn}[args.job](engine, args)
    finally:
        await store.aclose()


if __name__ == "__main__":
    asyncio.run(main())
