"""The session engine against the seed's session manager, every figure measured in one run.

Run from the repository root::

    .venv/bin/python bench/bench_engine.py          # about a minute; --quick for a smoke run

The seed is ``../shared/seed/reference_session_manager.py`` (relative to the repository root),
the seed's code made runnable; this script puts its directory on ``sys.path`` itself. Four
figures, each taken for the seed and for snapreport's engine on the memory store in the same
process, one after the other:

1. an uncontended turn (open + mutate + commit) against the seed's ``get()`` +
   ``add_history()``: median and p99 of many single timings (``time.perf_counter_ns``);
2. bytes per idle session and per session holding 10 text turns, at 100k sessions, measured
   with ``tracemalloc`` (Python's own allocations, after a full collection);
3. the worst single-request latency while 1M sessions exist and most of them expire: requests
   drive the clock past the TTL, the engine's sweeper (``run_sweeper``) runs as a background
   task, the seed cleans up inside ``get()`` as it does;
4. lost updates among 1,000 concurrent turns of one user, each reading the last number in the
   history, awaiting once (where a real handler calls the VLM), and appending that number + 1.

The results are printed and written to ``docs/benchmarks-engine.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
import types
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = ROOT.parent / "shared" / "seed"
SEED_PATH_SHOWN = "../shared/seed/reference_session_manager.py"
REPORT = ROOT / "docs" / "benchmarks-engine.md"
sys.path.insert(0, str(ROOT / "src"))  # runs from a checkout even without an install
sys.path.insert(0, str(SEED_DIR))

try:
    import reference_session_manager as seed
except ImportError:  # pragma: no cover - a checkout without the seed beside it
    sys.exit(f"the seed is missing: expected {SEED_PATH_SHOWN} (relative to the repository root)")

from snapreport.session.engine import EngineConfig, SessionEngine  # noqa: E402
from snapreport.session.stores.memory import MemorySessionStore  # noqa: E402

TTL = 600.0
T0 = 1_700_000_000.0
SWEEP_INTERVAL_APP = 5.0  # what the HTTP service passes to run_sweeper

TURN_TARGET_US = 10.0
LATENCY_TARGET_MS = 1.0


class Clock:
    """A settable clock shared by the engine, its store and (patched in) the seed."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def use_seed_clock(clock: Callable[[], float] | None) -> None:
    """The seed calls ``time.time()``; point it at ``clock`` (None: the real time again)."""
    seed.time = types.SimpleNamespace(time=clock) if clock is not None else time


def make_engine(clock: Clock) -> SessionEngine:
    return SessionEngine(
        MemorySessionStore(clock=clock), EngineConfig(ttl_seconds=TTL), clock=clock
    )


def user_text(i: int, t: int) -> str:
    return f"3号楼{t % 7 + 1}层东侧消防通道被杂物堵住了，编号 {i}-{t}"


def reply_text(i: int, t: int) -> str:
    return (
        f"收到。照片识别为“消防通道堵塞”，置信度 0.9{t % 10}。请发送位置，或回复“取消”。"
        f"工单草稿 {i}-{t} 已保存，确认后提交。"
    )


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------ 1. turn overhead


@dataclass
class TurnFigures:
    seed_median_us: float
    seed_p99_us: float
    ours_median_us: float
    ours_p99_us: float
    new_seed_median_us: float
    new_ours_median_us: float


def bench_turns(iterations: int) -> TurnFigures:
    """Alternating rounds, so that both see the same machine state."""
    use_seed_clock(None)
    clock = Clock()
    engine = make_engine(clock)
    manager = seed.SessionManager()
    user = "bench-user"
    text = user_text(1, 1)

    async def prepare() -> None:
        async with engine.turn(user) as session:
            for t in range(10):
                session.history.add_user(user_text(0, t))
                session.history.add_assistant(reply_text(0, t))

    run(prepare())
    for t in range(10):
        manager.get(user).add_history("user", user_text(0, t))
        manager.get(user).add_history("assistant", reply_text(0, t))

    seed_samples: list[int] = []
    ours_samples: list[int] = []
    new_seed: list[int] = []
    new_ours: list[int] = []
    clock_ns = time.perf_counter_ns
    rounds = 5
    per_round = iterations // rounds

    def seed_round(offset: int) -> None:
        for _ in range(per_round):
            start = clock_ns()
            manager.get(user).add_history("user", text)
            seed_samples.append(clock_ns() - start)
        for i in range(per_round // 4):
            name = f"new-{offset}-{i}"
            start = clock_ns()
            manager.get(name).add_history("user", text)
            new_seed.append(clock_ns() - start)

    async def ours_round(offset: int) -> None:
        for _ in range(per_round):
            start = clock_ns()
            async with engine.turn(user) as session:
                session.history.add_user(text)
            ours_samples.append(clock_ns() - start)
            clock.now += 0.001
        for i in range(per_round // 4):
            name = f"new-{offset}-{i}"
            start = clock_ns()
            async with engine.turn(name) as session:
                session.history.add_user(text)
            new_ours.append(clock_ns() - start)

    for r in range(rounds):
        seed_round(r)
        run(ours_round(r))
    return TurnFigures(
        statistics.median(seed_samples) / 1e3,
        pct(seed_samples, 0.99) / 1e3,
        statistics.median(ours_samples) / 1e3,
        pct(ours_samples, 0.99) / 1e3,
        statistics.median(new_seed) / 1e3,
        statistics.median(new_ours) / 1e3,
    )


# ------------------------------------------------------------------ 2. memory per session


def traced(build: Callable[[], object]) -> tuple[int, object]:
    """Bytes that ``build``'s result holds, by tracemalloc, after full collections."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def seed_sessions(n: int, turns: int) -> object:
    manager = seed.SessionManager()
    for i in range(n):
        session = manager.get(f"user-{i:07d}")
        for t in range(turns):
            session.add_history("user", user_text(i, t))
            session.add_history("assistant", reply_text(i, t))
    return manager


def our_sessions(n: int, turns: int) -> object:
    clock = Clock()
    engine = make_engine(clock)

    async def build() -> None:
        for i in range(n):
            async with engine.turn(f"user-{i:07d}") as session:
                for t in range(turns):
                    session.history.add_user(user_text(i, t))
                    session.history.add_assistant(reply_text(i, t))

    run(build())
    return engine


@dataclass
class MemoryFigures:
    n: int
    seed_idle: float
    ours_idle: float
    seed_full: float
    ours_full: float
    blob_full: int


def bench_memory(n: int) -> MemoryFigures:
    use_seed_clock(None)
    figures = []
    for turns in (0, 10):
        for build in (seed_sessions, our_sessions):
            size, kept = traced(lambda b=build, t=turns: b(n, t))  # type: ignore[misc]
            figures.append(size / n)
            if isinstance(kept, SessionEngine) and turns:
                blob = run(kept.store.load("user-0000000"))
                blob_full = len(blob or b"")
            del kept
    return MemoryFigures(n, figures[0], figures[1], figures[2], figures[3], blob_full)


# ------------------------------------------------------------------ 3. latency during mass expiry


@dataclass
class Samples:
    wall: list[int]
    cpu: list[int]


Handler = Callable[[str], Coroutine[Any, Any, None]]


@dataclass
class ExpiryRun:
    max_ms: float
    max_cpu_ms: float
    p999_ms: float
    p999_cpu_ms: float
    median_us: float
    over_target: int
    pressure: str  # CPU pressure on the machine (PSI, last minute) when the run ended
    expired: int
    left: int


@dataclass
class ExpiryFigures:
    sessions: int
    requests: int
    seed: list[ExpiryRun]
    ours: list[ExpiryRun]
    sweep_interval: float

    @staticmethod
    def median_worst_cpu(runs: list[ExpiryRun]) -> float:
        return statistics.median(r.max_cpu_ms for r in runs)


CREATE_SPAN = 100.0  # sessions are created over this much (fake) time
LOOP_FROM, LOOP_TO = 590.0, 900.0  # requests run the clock across every TTL and a seed cleanup


async def drive(n: int, requests: int, clock: Clock, handle: Handler) -> Samples:
    """Requests back to back, the clock moving from LOOP_FROM to LOOP_TO after T0. A request's
    latency runs from the end of the previous one, so time the event loop spent on anything
    else in between (the sweeper) is charged to it. Also this thread's CPU time over the same
    span: the loop does no I/O, so on a machine of its own a request's latency is its CPU
    time; where the wall time is higher, the process was waiting for a core."""
    rng = random.Random(42)
    step = (LOOP_TO - LOOP_FROM) / requests
    samples = Samples([], [])
    wall_ns, cpu_ns = time.perf_counter_ns, time.thread_time_ns
    await asyncio.sleep(0)
    last, last_cpu = wall_ns(), cpu_ns()
    for r in range(requests):
        clock.now = T0 + LOOP_FROM + r * step
        await handle(f"user-{rng.randrange(n):07d}")
        now, now_cpu = wall_ns(), cpu_ns()
        samples.wall.append(now - last)
        samples.cpu.append(now_cpu - last_cpu)
        await asyncio.sleep(0)  # one turn of the loop: the sweeper runs here if it is due
        last, last_cpu = wall_ns(), cpu_ns()
    return samples


def cpu_pressure() -> str:
    """The kernel's CPU pressure: the share of time some task waited for a core (Linux PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "n/a"
    fields = dict(f.split("=") for f in line.split()[1:])
    return f"{float(fields['avg60']):.0f}%"


def summarize(samples: Samples, expired: int, left: int) -> ExpiryRun:
    wall, cpu = samples.wall, samples.cpu
    return ExpiryRun(
        max(wall) / 1e6,
        max(cpu) / 1e6,
        pct(wall, 0.999) / 1e6,
        pct(cpu, 0.999) / 1e6,
        statistics.median(wall) / 1e3,
        sum(1 for x in wall if x > LATENCY_TARGET_MS * 1e6),
        cpu_pressure(),
        expired,
        left,
    )


def seed_expiry_run(n: int, requests: int) -> ExpiryRun:
    """The seed: its cleanup runs inside ``get()`` every 300 s of clock."""
    clock = Clock()
    use_seed_clock(clock)
    manager = seed.SessionManager()
    for i in range(n):
        clock.now = T0 + i * CREATE_SPAN / n
        manager.get(f"user-{i:07d}").add_history("user", user_text(i, 0))

    async def request(user: str) -> None:
        manager.get(user).add_history("user", "确认")

    gc.collect()
    samples = run(drive(n, requests, clock, request))
    use_seed_clock(None)
    left = len(manager._sessions)
    return summarize(samples, n - left, left)


def our_expiry_run(n: int, requests: int, interval: float) -> ExpiryRun:
    """snapreport: the sweeper runs as the HTTP service runs it, its interval scaled like the
    clock; every commit purges a few due records too."""
    clock = Clock()
    engine = make_engine(clock)
    store = engine.store
    assert isinstance(store, MemorySessionStore)

    async def build() -> None:
        for i in range(n):
            clock.now = T0 + i * CREATE_SPAN / n
            async with engine.turn(f"user-{i:07d}") as session:
                session.history.add_user(user_text(i, 0))

    async def request(user: str) -> None:
        async with engine.turn(user) as session:
            session.history.add_user("确认")

    async def with_sweeper() -> Samples:
        sweeper = asyncio.create_task(engine.run_sweeper(interval))
        try:
            return await drive(n, requests, clock, request)
        finally:
            sweeper.cancel()

    run(build())
    gc.collect()
    samples = run(with_sweeper())
    left = len(store)
    return summarize(samples, n - left, left)


def sweep_interval(n: int, requests: int) -> float:
    """The service's sweep interval in real time, scaled as the benchmark scales the clock
    (from the pace of a short dry run)."""
    clock = Clock()
    engine = make_engine(clock)

    async def request(user: str) -> None:
        async with engine.turn(user) as session:
            session.history.add_user("确认")

    probe = max(1000, requests // 50)
    started = time.perf_counter()
    run(drive(n, probe, clock, request))
    real_per_request = (time.perf_counter() - started) / probe
    clock_per_request = (LOOP_TO - LOOP_FROM) / requests
    return SWEEP_INTERVAL_APP * real_per_request / clock_per_request


def bench_expiry(n: int, requests: int, repeats: int) -> ExpiryFigures:
    interval = sweep_interval(n, requests)
    seed_runs, our_runs = [], []
    for _ in range(repeats):
        seed_runs.append(seed_expiry_run(n, requests))
        gc.collect()  # what the run built is garbage now
        our_runs.append(our_expiry_run(n, requests, interval))
        gc.collect()
    return ExpiryFigures(n, requests, seed_runs, our_runs, interval)


# ------------------------------------------------------------------ 4. lost updates


@dataclass
class LostFigures:
    turns: int
    seed_final: int
    ours_final: int
    ours_in_order: bool
    seed_ms: float
    ours_ms: float


def bench_lost_updates(turns: int) -> LostFigures:
    use_seed_clock(None)
    manager = seed.SessionManager()

    async def seed_handler() -> None:
        session = manager.get("alice")
        last = int(session.history[-1]["content"]) if session.history else 0
        await asyncio.sleep(0)  # the VLM call
        session.add_history("user", str(last + 1))

    async def seed_all() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(seed_handler() for _ in range(turns)))
        return (time.perf_counter() - started) * 1e3

    seed_ms = run(seed_all())
    seed_final = int(manager.get("alice").history[-1]["content"])

    clock = Clock()
    engine = make_engine(clock)
    served: list[int] = []

    async def our_handler(i: int) -> None:
        async with engine.turn("alice") as session:
            messages = session.history.messages()
            last = int(messages[-1].text) if messages else 0
            await asyncio.sleep(0)  # the VLM call
            session.history.add_user(str(last + 1))
            served.append(i)

    async def ours_all() -> tuple[float, int]:
        started = time.perf_counter()
        await asyncio.gather(*(our_handler(i) for i in range(turns)))
        elapsed = (time.perf_counter() - started) * 1e3
        info = await engine.peek("alice")
        assert info is not None
        return elapsed, int(info.session.history.messages()[-1].text)

    ours_ms, ours_final = run(ours_all())
    return LostFigures(
        turns, seed_final, ours_final, served == list(range(turns)), seed_ms, ours_ms
    )


# ------------------------------------------------------------------ report


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    return (
        f"{platform.machine()}, {cores} cores{f' ({model})' if model else ''}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}"
    )


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def command() -> str:
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else "python"
    except ValueError:
        shown = "python"
    return " ".join([shown, "bench/bench_engine.py", *sys.argv[1:]])


def report(
    turn: TurnFigures, memory: MemoryFigures, expiry: ExpiryFigures, lost: LostFigures
) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    idle_ok = memory.ours_idle <= memory.seed_idle
    full_ok = memory.ours_full <= memory.seed_full / 2
    lines = [
        "# Benchmark: the session engine against the seed",
        "",
        f"Measured {when} on {machine()}, with:",
        "",
        "```",
        command(),
        "```",
        "",
        f"Every figure puts snapreport's engine (memory store) beside the seed's session manager "
        f"(`{SEED_PATH_SHOWN}`, the seed's code made runnable), measured in the same process, in "
        "the same run. Times are `time.perf_counter_ns` around single operations; memory is "
        "`tracemalloc` (every Python allocation, after a full garbage collection). The machine "
        "was not otherwise idle (other work shares its cores), so tail figures carry some noise.",
        "",
        f"## 1. An uncontended turn (target: median ≤ {TURN_TARGET_US:g} µs; "
        f"{met(turn.ours_median_us <= TURN_TARGET_US)})",
        "",
        "snapreport: `async with engine.turn(user) as session: session.history.add_user(text)` — "
        "take the user's lock, load and decode the record, check expiry, append, validate, "
        "encode, commit, release. The seed: `manager.get(user).add_history('user', text)` — "
        "a dict lookup and a list append on a shared object, no lock, nothing serialized.",
        "",
        "| | seed | snapreport | ratio |",
        "|---|---:|---:|---:|",
        f"| session holding 10 turns, median | {turn.seed_median_us:.2f} µs | "
        f"{turn.ours_median_us:.2f} µs | {turn.ours_median_us / turn.seed_median_us:.1f}x |",
        f"| session holding 10 turns, p99 | {turn.seed_p99_us:.2f} µs | "
        f"{turn.ours_p99_us:.2f} µs | {turn.ours_p99_us / turn.seed_p99_us:.1f}x |",
        f"| first turn of a new user, median | {turn.new_seed_median_us:.2f} µs | "
        f"{turn.new_ours_median_us:.2f} µs | "
        f"{turn.new_ours_median_us / turn.new_seed_median_us:.1f}x |",
        "",
        "The seed is faster because it does far less, and the difference is what the service "
        "needs: a per-user lock that keeps one user's messages in order and loses no update "
        "(the seed loses 999 of 1,000, section 4); a record encoded as bytes, so that the "
        "same turn works on SQLite or Redis and survives a restart or another worker (the "
        "seed's dict dies with its process); a commit that is all or nothing (a failed turn "
        "writes nothing); an expiry date on every record, so that an expired session is never"
        " handed out and one that expired mid-report says so once on the next message (the "
        "seed forgets it silently); and bounds on what a session holds: every text's length, "
        "and a history trimmed by whole turns, checked on every commit (the seed keeps any "
        "text and cuts its history at 20 messages, which can start it with a reply). Each of "
        "these is a few microseconds the seed does not spend; in a request that takes about "
        "100 µs of CPU (benchmarks-http.md) or ",
        "",
        f"## 2. Bytes per session at {memory.n:,} sessions (targets: idle ≤ the seed, "
        f"{met(idle_ok)}; 10 text turns ≤ half the seed, {met(full_ok)})",
        "",
        "| session | seed | snapreport | ratio |",
        "|---|---:|---:|---:|",
        f"| idle (no history) | {memory.seed_idle:,.0f} B | {memory.ours_idle:,.0f} B | "
        f"{memory.ours_idle / memory.seed_idle:.2f} |",
        f"| 10 text turns (20 messages) | {memory.seed_full:,.0f} B | {memory.ours_full:,.0f} B | "
        f"{memory.ours_full / memory.seed_full:.2f} |",
        "",
        "Each session's texts are its own (user ids and numbers in them differ), as real messages "
        f"are: a user message of {len(user_text(1234567, 3))} characters and a reply of "
        f"{len(reply_text(1234567, 3))}, mostly Chinese. The seed keeps a dict and a str object "
        "per message; snapreport keeps one exact-size MessagePack blob per session "
        f"({memory.blob_full:,} bytes for these 10 turns) plus a 16-byte expiry header, a dict "
        "entry and an expiry-wheel entry. Chinese costs 3 bytes "
        "a character in UTF-8 against 2 in a Python str, so the longer the texts, the closer the "
        "two: the saving comes from the per-message objects.",
        "",
        f"## 3. Worst single-request latency while {expiry.sessions:,} sessions expire "
        f"(target: ≤ {LATENCY_TARGET_MS:g} ms; "
        f"{met(ExpiryFigures.median_worst_cpu(expiry.ours) <= LATENCY_TARGET_MS)} in CPU time, "
        f"{met(statistics.median(r.max_ms for r in expiry.ours) <= LATENCY_TARGET_MS)} "
        "in wall time)",
        "",
        f"{expiry.sessions:,} sessions are created over {CREATE_SPAN:g} s of clock, each with one "
        f"message. Then {expiry.requests:,} requests (random users among them) run back to back "
        f"while the clock moves from {LOOP_FROM:g} s to {LOOP_TO:g} s after the start, past "
        "every session's TTL. A request's latency counts from the end of the previous request, "
        "so time the event loop spends on anything else between two requests (the sweeper, the "
        "garbage collector) is charged to the next one. The seed cleans up inside `get()` "
        "(every 300 s of clock: a scan of every session). snapreport runs "
        "`engine.run_sweeper()` as a background task, as the HTTP service does, its "
        f"{SWEEP_INTERVAL_APP:g} s interval scaled like the clock (here "
        f"{expiry.sweep_interval * 1e3:.0f} ms of real time); every commit also purges a few "
        f"due records. Each side ran {len(expiry.ours)} time(s), each on fresh sessions.",
        "",
        "| run | seed: worst (wall) | seed: worst (CPU) | snapreport: worst (wall) "
        "| snapreport: worst (CPU) | snapreport: p99.9 (wall / CPU) | snapreport: median "
        f"| snapreport: over {LATENCY_TARGET_MS:g} ms (wall) | CPU pressure |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {i + 1} | {s.max_ms:.1f} ms | {s.max_cpu_ms:.1f} ms | {o.max_ms:.3f} ms | "
            f"{o.max_cpu_ms:.3f} ms | {o.p999_ms:.3f} / {o.p999_cpu_ms:.3f} ms | "
            f"{o.median_us:.1f} µs | {o.over_target} | {o.pressure} |"
            for i, (s, o) in enumerate(zip(expiry.seed, expiry.ours, strict=True))
        ),
        f"| median | {statistics.median(r.max_ms for r in expiry.seed):.1f} ms | "
        f"{ExpiryFigures.median_worst_cpu(expiry.seed):.1f} ms | "
        f"{statistics.median(r.max_ms for r in expiry.ours):.3f} ms | "
        f"{ExpiryFigures.median_worst_cpu(expiry.ours):.3f} ms | | | | |",
        "",
        "The loop does no I/O, so on a machine of its own a request's latency is the CPU time "
        "its thread spends from the end of the previous request to its own end: the request, "
        "a sweeper step if one ran, a collection if one ran. That is the figure judged against "
        "the target. The wall-clock worst is in the table too: this machine runs other work on "
        "its two cores (CPU pressure is the share of the last minute some task waited for a "
        "core, from the kernel), and a request that waited for a core measures the machine, "
        "not the engine. The seed's worst request is its cleanup: CPU time, not waiting. "
        f"snapreport expired {expiry.ours[0].expired:,} sessions in a run and kept "
        f"{expiry.ours[0].left:,} (the ones the requests kept alive). Its expiry work is "
        "proportional to what expires: a timing wheel of one-second buckets emptied in steps "
        "of at most 256 records, records sharded over 256 small dicts (a dict of a million "
        "entries stalls for tens of milliseconds when it resizes), and no large structure the "
        "garbage collector has to walk.",
        "",
        f"## 4. Lost updates among {lost.turns:,} concurrent turns of one user (target: 0; "
        f"{met(lost.ours_final == lost.turns)})",
        "",
        "Each turn reads the last number in the user's history, awaits once (where a real "
        "handler calls the VLM), then appends that number + 1. With no lost update the last "
        f"number is {lost.turns:,}.",
        "",
        "| | seed | snapreport |",
        "|---|---:|---:|",
        f"| last number | {lost.seed_final:,} | {lost.ours_final:,} |",
        f"| lost updates | {lost.turns - lost.seed_final:,} | {lost.turns - lost.ours_final:,} |",
        f"| served in arrival order | — | {'yes' if lost.ours_in_order else 'NO'} |",
        f"| wall time for all {lost.turns:,} | {lost.seed_ms:.1f} ms | {lost.ours_ms:.1f} ms |",
        "",
        "The seed hands every concurrent handler the same object with no lock: all of them read "
        "before any writes. snapreport's turns queue on the user's lock in arrival order; each "
        "one loads what the previous one committed.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    sizes = (
        {
            "turns": 5_000,
            "memory": 5_000,
            "sessions": 50_000,
            "requests": 20_000,
            "lost": 1000,
            "repeats": 1,
        }
        if args.quick
        else {
            "turns": 50_000,
            "memory": 100_000,
            "sessions": 1_000_000,
            "requests": 300_000,
            "lost": 1000,
            "repeats": 3,
        }
    )
    started = time.perf_counter()
    print("1/4 turn overhead ...", flush=True)
    turn = bench_turns(sizes["turns"])
    print("2/4 memory per session ...", flush=True)
    memory = bench_memory(sizes["memory"])
    print("3/4 latency during mass expiry ...", flush=True)
    expiry = bench_expiry(sizes["sessions"], sizes["requests"], sizes["repeats"])
    print("4/4 lost updates ...", flush=True)
    lost = bench_lost_updates(sizes["lost"])
    text = report(turn, memory, expiry, lost)
    print()
    print(text)
    REPORT.write_text(text, encoding="utf-8")
    print(f"written to {REPORT.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
