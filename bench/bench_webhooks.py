"""Webhook benchmark: deliveries per second to a local receiver, and the lag from an order
change to its webhook's arrival at 500 changes a second, beside the notification figures
measured in the same run.

Run from the repository root: ``python bench/bench_webhooks.py`` (``--quick`` for a smoke run).
It reuses ``bench_outbox.py``'s throwaway PostgreSQL, receiver process (answers 204) and
producer process, and rewrites ``docs/benchmarks-webhooks.md``.

The pipeline is the production one: one ``OutboxWorker`` runs the "order." handler (in-app
notifications plus the webhook fan-out, one transaction a round) and the "webhook.deliver"
handler (target check, signing, an aiohttp POST, then one transaction a round that completes
the jobs and logs the attempts), for one endpoint subscribed to every event.

- **throughput**: N order changes are committed first; deliveries/s = N / the time from the
  worker's start to the N-th webhook POST answered; CPU/delivery is this process's CPU time
  over that run divided by N.
- **lag**: the producer process commits 500 order changes a second for a few seconds; lag is
  from the change's commit (the body's ``timestamp``) to the webhook POST answered. Each
  change is two outbox jobs in turn (the fan-out, then the delivery).
- **baseline**: ``bench_outbox.py``'s throughput and lag, run here on the same machine at the
  same time: one POST per outbox message, no writes but the completion. The ratio
  webhooks / notifications is the figure that survives a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # runs from a checkout even without an install
sys.path.insert(0, str(ROOT))  # the test harness starts PostgreSQL
sys.path.insert(0, str(ROOT / "bench"))

from tests.harness.postgres_server import fresh_database, start_postgres  # noqa: E402

import bench_outbox  # noqa: E402
from snapreport.orders.repository import SqlOrderRepository  # noqa: E402
from snapreport.outbox.base import OutboxMessage  # noqa: E402
from snapreport.outbox.senders.inapp import OrderNotifier  # noqa: E402
from snapreport.outbox.sqlalchemy import OutboxNudge, SqlOutboxStore, enqueue  # noqa: E402
from snapreport.outbox.worker import OutboxWorker, Routes  # noqa: E402
from snapreport.webhooks.base import DELIVER_TOPIC  # noqa: E402
from snapreport.webhooks.fanout import fan_out  # noqa: E402
from snapreport.webhooks.sender import Outcome, Poster, WebhookSender, build_session  # noqa: E402
from snapreport.webhooks.store import SqlWebhooks  # noqa: E402
from snapreport.webhooks.targets import CachedResolver, TargetCheck  # noqa: E402

DOC = ROOT / "docs" / "benchmarks-webhooks.md"
COMMAND = "python bench/bench_webhooks.py"
RATE = bench_outbox.RATE


@dataclass
class Seen:
    """Webhook POSTs answered, as the HTTP client sees them."""

    count: int = 0
    last_at: float = 0.0
    lags: list[float] = field(default_factory=list)


class Watching(Poster):
    """The production poster, noting each answered POST and its lag from the change's commit."""

    def __init__(self, targets: TargetCheck, client: aiohttp.ClientSession, seen: Seen) -> None:
        super().__init__(targets, client, timeout_seconds=15)
        self._seen = seen

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        outcome = await super().send(url, body, headers)
        if outcome.ok:
            now = time.time()
            stamp = msgspec.json.decode(body)["timestamp"]
            self._seen.count += 1
            self._seen.last_at = now
            self._seen.lags.append(now - datetime.fromisoformat(stamp).timestamp())
        return outcome


@contextlib.asynccontextmanager
async def running(store: SqlOutboxStore, routes: Routes) -> AsyncIterator[None]:
    nudge = OutboxNudge()
    nudge.start()
    worker = OutboxWorker(store, routes, wake=nudge.event)
    worker.start()
    try:
        yield
    finally:
        await worker.aclose()
        nudge.stop()


async def setup(
    db_url: str, receiver_url: str, seen: Seen
) -> tuple[SqlOrderRepository, SqlOutboxStore, Routes, aiohttp.ClientSession]:
    repo = await SqlOrderRepository.connect(db_url)
    store = SqlOutboxStore(repo.engine)
    await SqlWebhooks(repo.engine, TargetCheck(allow_private=True), max_endpoints=10).subscribe(
        receiver_url, ["*"], "bench"
    )
    targets = TargetCheck(allow_private=True, resolver=CachedResolver())
    client = build_session(targets)
    sender = WebhookSender(repo.engine, Watching(targets, client, seen))
    routes = Routes(
        {
            "order.": OrderNotifier(
                store.sessions, wecom=False, also=[fan_out], parallel=store.parallel_writes
            ),
            DELIVER_TOPIC: sender,
        }
    )
    return repo, store, routes, client


async def throughput(db_url: str, receiver_url: str, n: int) -> tuple[float, float]:
    """Deliveries per second, and this process's CPU seconds per delivery."""
    seen = Seen()
    repo, store, routes, client = await setup(db_url, receiver_url, seen)
    try:
        for start in range(0, n, 500):
            async with store.sessions() as session, session.begin():
                enqueue(
                    session,
                    *(
                        OutboxMessage(bench_outbox.TOPIC, bench_outbox.PAYLOAD)
                        for _ in range(min(500, n - start))
                    ),
                )
        began, cpu = time.time(), time.process_time()
        async with running(store, routes):
            await bench_outbox.wait_for(lambda: seen.count >= n, 900)
            cpu = time.process_time() - cpu
        if seen.count != n:
            raise RuntimeError(f"{seen.count} webhooks arrived for {n} changes")
        return n / (seen.last_at - began), cpu / n
    finally:
        await client.close()
        await repo.aclose()


async def lag(db_url: str, receiver_url: str, seconds: float) -> list[float]:
    seen = Seen()
    repo, store, routes, client = await setup(db_url, receiver_url, seen)
    total = int(RATE * seconds)
    try:
        async with running(store, routes):
            producer = await asyncio.create_subprocess_exec(
                sys.executable, bench_outbox.__file__, "--produce", db_url, str(RATE), str(seconds)
            )
            await producer.wait()
            if producer.returncode != 0:
                raise RuntimeError("the producer failed")
            await bench_outbox.wait_for(lambda: seen.count >= total, 300)
        return seen.lags
    finally:
        await client.close()
        await repo.aclose()


@dataclass
class Row:
    backend: str
    per_second: float
    cpu_ms: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    changes: int
    base_per_second: float
    base_cpu_ms: float
    base_lag_p99: float


TARGET_PER_SECOND = 1000  # twice the 500 changes a second of the lag run
TARGET_P99_SECONDS = 1.0  # the notifications' target


def targets_met(r: Row) -> str:
    rate = "met" if r.per_second >= TARGET_PER_SECOND else "**MISSED**"
    lag = "met" if r.lag_p99 <= TARGET_P99_SECONDS else "**MISSED**"
    return f"≥{TARGET_PER_SECOND:,}/s {rate}, p99 ≤{TARGET_P99_SECONDS:g} s {lag}"


def render(rows: list[Row], n: int, seconds: float, load: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Webhook benchmarks",
        "",
        f"Produced by `{COMMAND}` on {when}. Do not edit by hand: run the command again (it",
        "starts its own PostgreSQL and receiver; about two minutes).",
        "",
        f"- Machine: {bench_outbox.machine()}; load average at the start: {load}",
        f"- Software: Python {sys.version.split()[0]}, SQLAlchemy with aiosqlite / asyncpg, "
        "aiohttp",
        "- Everything shares the machine's cores with other work on it: single figures move by",
        "  ±20 % from run to run (more when the machine is busy). The notification figures",
        "  beside them (the baseline of [benchmarks-outbox.md](benchmarks-outbox.md): the same",
        "  receiver, producer and worker, a handler that only POSTs) are measured in the same",
        "  run, so the ratios compare like with like.",
        "",
        "## What is measured",
        "",
        f"- **Deliveries/s**: {n:,} order changes committed first, then one `OutboxWorker`",
        "  (defaults) runs the production handlers for one endpoint subscribed to `*`: the",
        "  `order.` handler (in-app notifications and the webhook fan-out; the changes a round",
        "  holds share one transaction), then `webhook.deliver` (target check, signing, an",
        "  aiohttp POST to a local receiver answering 204 over keep-alive connections; the",
        "  attempts of a round are logged and completed in one transaction). Target: at least",
        f"  {TARGET_PER_SECOND:,}/s, twice the rate of the lag run.",
        "- **CPU/delivery**: this process's CPU time over the throughput run per delivery (the",
        "  worker, the database driver, the HTTP client); one free core at that cost delivers",
        "  1 / CPU per second.",
        f"- **Lag**: a producer process commits {RATE} order changes a second for {seconds:g} s;",
        "  lag is from the change's commit (the body's `timestamp`) to the POST answered. Each",
        "  change passes the outbox twice (fan-out, then delivery). Target: p99 at most",
        f"  {TARGET_P99_SECONDS:g} s, as for notifications.",
        "",
        "| Backend | Webhooks/s | Notifications/s | Ratio | CPU/webhook | CPU/notification "
        "| Lag p50 | Lag p99 | Lag max | Notification lag p99 | Changes | Targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.per_second:,.0f} | {r.base_per_second:,.0f} | "
            f"{r.per_second / r.base_per_second:.2f} | {r.cpu_ms:.2f} ms | "
            f"{r.base_cpu_ms:.2f} ms | {r.lag_p50 * 1000:.0f} ms | "
            f"{r.lag_p99 * 1000:.0f} ms | {r.lag_max * 1000:.0f} ms | "
            f"{r.base_lag_p99 * 1000:.0f} ms | {r.changes:,} | {targets_met(r)} |"
        )
    lines += [
        "",
        "One free core at the measured CPU cost would deliver about "
        + ", ".join(f"{1000 / r.cpu_ms:,.0f}/s ({r.backend})" for r in rows)
        + " webhooks.",
        "A missed target is written as **MISSED**; the load average above says how much of",
        "the machine the run had (two cores shared with other work: when the",
        "notification baseline itself runs far below its quiet-machine figure of about",
        "4,000/s, so do the webhooks).",
        "",
        "## Before and after",
        "",
        "On a quiet machine (load 0.7) the pipeline as first built delivered 61 (SQLite) and",
        "90 (PostgreSQL) webhooks/s beside 4,120 and 4,210 notifications/s, a ratio of 0.015",
        "to 0.02, and at 500 changes/s its lag grew to 13–15 s. A profile of its throughput",
        "run on SQLite found each delivery (490 ms from claim to record, 64 at once) waiting",
        "about 290 ms for its own record transaction and about 190 ms to read its message",
        "(most of it for a pool connection): every handler opened its own write transaction",
        "(the fan-out's, then the attempt's), and they queued for SQLite's one write lock or",
        "PostgreSQL's pool. The POST itself was 15 ms.",
        "",
        "Now the handlers of a round share their database work (group commit,",
        "`snapreport.outbox.batching`): one transaction and a few multi-row statements fan a",
        "round of changes out, one query loads a round's messages with their endpoints, one",
        "transaction records a round's attempts (completions under each job's own claim,",
        "endpoint failure clocks, log rows, retries); up to four of these run at once on",
        "PostgreSQL, one on SQLite. The worker no longer deletes jobs those handlers completed",
        "themselves.",
        "",
        "With the writes batched, the HTTP client was the next limit: httpx, 64 requests at",
        "once against this receiver, managed 60–70 requests/s where aiohttp's client did",
        "1,500–2,000/s on the same machine at the same time. The webhook client is now one",
        "aiohttp session with keep-alive connections whose resolver is the target check, so",
        "every connection still goes to an address the check allowed; a host's lookup is kept",
        "5 s and shared by concurrent sends, and each send checks the addresses again.",
        "",
        "What remains: a webhook still costs about three times a notification's CPU (two",
        "passes through the outbox, a message row, a delivery job and a log row, the",
        "signature, the target check), and on PostgreSQL each of those statements waits for",
        "the database server's share of the same two cores.",
        "",
    ]
    return "\n".join(lines)


async def main(quick: bool) -> None:
    n = 500 if quick else 2000
    seconds = 1.0 if quick else 6.0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: list[Row] = []
    pg = start_postgres()
    try:
        with bench_outbox.receiver() as receiver_url, tempfile.TemporaryDirectory() as tmp:
            for backend in ("sqlite", "postgresql"):
                urls: list[str] = []
                async with contextlib.AsyncExitStack() as stack:
                    for i in range(4):
                        if backend == "sqlite":
                            urls.append(f"sqlite+aiosqlite:///{tmp}/run{i}.db")
                        else:
                            urls.append(
                                await stack.enter_async_context(fresh_database(pg.admin_url))
                            )
                    base_rate, base_cpu = await bench_outbox.throughput(urls[0], receiver_url, n)
                    base_lags = await bench_outbox.lag(urls[1], receiver_url, seconds)
                    per_second, cpu = await throughput(urls[2], receiver_url, n)
                    lags = await lag(urls[3], receiver_url, seconds)
                row = Row(
                    backend,
                    per_second,
                    cpu * 1000,
                    statistics.median(lags),
                    bench_outbox.quantile(lags, 0.99),
                    max(lags),
                    len(lags),
                    base_rate,
                    base_cpu * 1000,
                    bench_outbox.quantile(base_lags, 0.99),
                )
                rows.append(row)
                print(
                    f"{backend:>10}: webhooks {per_second:,.0f}/s ({row.cpu_ms:.2f} ms CPU "
                    f"each), notifications {base_rate:,.0f}/s ({row.base_cpu_ms:.2f} ms), "
                    f"ratio {per_second / base_rate:.2f}; webhook lag p50 "
                    f"{row.lag_p50 * 1000:.0f} ms, p99 {row.lag_p99 * 1000:.0f} ms, "
                    f"max {row.lag_max * 1000:.0f} ms over {row.changes} changes "
                    f"(notifications p99 {row.base_lag_p99 * 1000:.0f} ms); {targets_met(row)}",
                    flush=True,
                )
    finally:
        pg.destroy()
    if not quick:
        DOC.write_text(render(rows, n, seconds, load), encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run; no doc written")
    asyncio.run(main(parser.parse_args().quick))
