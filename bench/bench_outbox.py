"""Outbox benchmark: deliveries per second, and the lag from a change to its delivery.

Run from the repository root: ``python bench/bench_outbox.py`` (``--quick`` for a smoke run).
It starts a throwaway PostgreSQL (from the installed binaries, as the tests do) and a local
HTTP receiver in a process of its own, prints a table and rewrites ``docs/benchmarks-outbox.md``.

- **throughput**: N messages are committed first; then one ``OutboxWorker`` (the one a server
  process runs, with its default batch and concurrency) delivers them, each one an HTTP POST
  of its payload to the receiver over keep-alive connections. Deliveries/s = N / the time
  from the worker's start to the last delivery recorded.
- **lag**: a producer process commits 500 changes a second (each its own transaction, one
  message each, as dispatch does) for a few seconds, while the worker delivers. Lag is the
  time from the message's creation (in the change's transaction, just before its commit) to
  the end of its HTTP delivery; the producer is another process, so the worker learns of new
  rows by polling (every 0.1 s), not by the in-process nudge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # runs from a checkout even without an install
sys.path.insert(0, str(ROOT))  # the test harness starts PostgreSQL

from tests.harness.postgres_server import fresh_database, start_postgres  # noqa: E402

from snapreport.orders.repository import SqlOrderRepository  # noqa: E402
from snapreport.outbox.base import OutboxJob, OutboxMessage  # noqa: E402
from snapreport.outbox.sqlalchemy import OutboxNudge, SqlOutboxStore, enqueue  # noqa: E402
from snapreport.outbox.worker import OutboxWorker, Routes  # noqa: E402

DOC = ROOT / "docs" / "benchmarks-outbox.md"
COMMAND = "python bench/bench_outbox.py"
TOPIC = "order.created"
RATE = 500
PAYLOAD = {
    "type": TOPIC,
    "order_number": "WO-20261129-0001",
    "order": {"number": "WO-20261129-0001", "status": "open", "alarm_type": "漏水"},
    "actor": "alice",
    "recipients": ["lisi", "wangwu"],
    "text": "新工单 WO-20261129-0001：漏水，B2 停车场 17 号柱",
    "link": "/console/orders/WO-20261129-0001",
}


# ------------------------------------------------------------------ the receiver process


async def _serve_receiver(port_file: Path) -> None:
    """A minimal HTTP/1.1 server: reads each request (headers, Content-Length body) and
    answers 204, keeping the connection open."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        process = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the receiver did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text()}/deliver"
        finally:
            process.kill()
            process.wait(10)


# ------------------------------------------------------------------ the producer process


async def _produce(url: str, rate: int, seconds: float) -> None:
    """Commit ``rate`` one-message changes a second for ``seconds``, each its own transaction."""
    repo = await SqlOrderRepository.connect(url)
    store = SqlOutboxStore(repo.engine)
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = int(rate * seconds)
    try:
        for i in range(total):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with store.sessions() as session, session.begin():
                enqueue(session, OutboxMessage(TOPIC, PAYLOAD))
    finally:
        await repo.aclose()


# ------------------------------------------------------------------ measuring


@dataclass
class Delivered:
    count: int = 0
    last_at: float = 0.0
    lags: list[float] | None = None


def handler(client: aiohttp.ClientSession, url: str, seen: Delivered) -> Any:
    async def deliver(job: OutboxJob) -> None:
        async with client.post(url, json=job.payload) as response:
            response.raise_for_status()
        now = time.time()
        seen.count += 1
        seen.last_at = now
        if seen.lags is not None:
            seen.lags.append(now - job.created_at.timestamp())

    return deliver


@contextlib.asynccontextmanager
async def running_worker(store: SqlOutboxStore, url: str, seen: Delivered) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        nudge = OutboxNudge()
        nudge.start()
        worker = OutboxWorker(
            store, Routes({"order.": handler(client, url, seen)}), wake=nudge.event
        )
        worker.start()
        try:
            yield
        finally:
            await worker.aclose()
            nudge.stop()


async def wait_for(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def throughput(db_url: str, receiver_url: str, n: int) -> tuple[float, float]:
    """Deliveries per second, and this process's CPU seconds per delivery (the worker, its
    database driver's thread and the HTTP client; not the receiver or PostgreSQL)."""
    repo = await SqlOrderRepository.connect(db_url)
    store = SqlOutboxStore(repo.engine)
    try:
        for start in range(0, n, 500):
            async with store.sessions() as session, session.begin():
                enqueue(
                    session, *(OutboxMessage(TOPIC, PAYLOAD) for _ in range(min(500, n - start)))
                )
        seen = Delivered()
        began, cpu = time.time(), time.process_time()
        async with running_worker(store, receiver_url, seen):
            await wait_for(lambda: seen.count >= n, 600)
            cpu = time.process_time() - cpu
        assert (await store.counts())["pending"] == 0
        return n / (seen.last_at - began), cpu / n
    finally:
        await repo.aclose()


async def lag(db_url: str, receiver_url: str, seconds: float) -> list[float]:
    repo = await SqlOrderRepository.connect(db_url)
    store = SqlOutboxStore(repo.engine)
    total = int(RATE * seconds)
    try:
        seen = Delivered(lags=[])
        async with running_worker(store, receiver_url, seen):
            producer = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--produce", db_url, str(RATE), str(seconds)
            )
            await producer.wait()
            if producer.returncode != 0:
                raise RuntimeError("the producer failed")
            await wait_for(lambda: seen.count >= total, 120)
        assert seen.lags is not None
        return seen.lags
    finally:
        await repo.aclose()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}"


@dataclass
class Row:
    backend: str
    per_second: float
    cpu_ms: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    changes: int


def render(rows: list[Row], n: int, seconds: float, load: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Outbox benchmarks",
        "",
        f"Produced by `{COMMAND}` on {when}. Do not edit by hand: run the command again (it",
        "starts its own PostgreSQL and receiver; about a minute).",
        "",
        f"- Machine: {machine()}; load average at the start: {load}",
        f"- Software: Python {platform.python_version()}, SQLAlchemy with aiosqlite / asyncpg",
        "- The worker, the receiver, the producer and PostgreSQL share the machine's cores with",
        "  other work on it: single figures move by ±20 % from run to run.",
        "",
        "## What is measured",
        "",
        f"- **Deliveries/s**: {n:,} messages committed first, then one `OutboxWorker` (defaults:",
        "  batches of 100, 64 at once) delivers them, each an HTTP POST of its JSON payload to a",
        "  local receiver (another process; aiohttp's client, keep-alive connections). Target:",
        "  at least 1,000/s.",
        f"- **Lag**: a producer process commits {RATE} changes a second for {seconds:g} s (each",
        "  its own transaction with one message) while the worker delivers; lag is from the",
        "  message's creation in the change's transaction to the end of its HTTP delivery.",
        "  Another process's changes are found by polling (`POLL_SECONDS` 0.1). Target: p99 at",
        "  most 1 s.",
        "",
        "- **CPU/delivery**: the worker process's CPU time per delivery in the throughput run",
        "  (the worker, the database driver's thread, the HTTP client); one free core at that",
        "  cost delivers 1 / CPU per second. When the machine is busy the rate is bounded by",
        "  the share of a core the worker gets, not by waiting on the database.",
        "",
        "| Backend | Deliveries/s | CPU/delivery | Lag p50 | Lag p99 | Lag max | Changes "
        "| Targets |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = []
        met.append("≥1,000/s met" if r.per_second >= 1000 else "≥1,000/s **missed**")
        met.append("p99 ≤1 s met" if r.lag_p99 <= 1.0 else "p99 ≤1 s **missed**")
        lines.append(
            f"| {r.backend} | {r.per_second:,.0f} | {r.cpu_ms:.2f} ms | "
            f"{r.lag_p50 * 1000:.0f} ms | "
            f"{r.lag_p99 * 1000:.0f} ms | {r.lag_max * 1000:.0f} ms | {r.changes:,} | "
            f"{', '.join(met)} |"
        )
    return "\n".join(lines) + "\n"


async def main(quick: bool) -> None:
    n = 1000 if quick else 5000
    seconds = 2.0 if quick else 6.0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: list[Row] = []
    pg = start_postgres()
    try:
        with receiver() as receiver_url, tempfile.TemporaryDirectory() as tmp:
            for backend in ("sqlite", "postgresql"):
                if backend == "sqlite":
                    t_url = f"sqlite+aiosqlite:///{tmp}/throughput.db"
                    l_url = f"sqlite+aiosqlite:///{tmp}/lag.db"
                    per_second, cpu = await throughput(t_url, receiver_url, n)
                    lags = await lag(l_url, receiver_url, seconds)
                else:
                    async with fresh_database(pg.admin_url) as t_url:
                        per_second, cpu = await throughput(t_url, receiver_url, n)
                    async with fresh_database(pg.admin_url) as l_url:
                        lags = await lag(l_url, receiver_url, seconds)
                row = Row(
                    backend,
                    per_second,
                    cpu * 1000,
                    statistics.median(lags),
                    quantile(lags, 0.99),
                    max(lags),
                    len(lags),
                )
                rows.append(row)
                print(
                    f"{backend:>10}: {per_second:,.0f} deliveries/s ({row.cpu_ms:.2f} ms CPU "
                    "each); lag p50 "
                    f"{row.lag_p50 * 1000:.0f} ms, p99 {row.lag_p99 * 1000:.0f} ms, "
                    f"max {row.lag_max * 1000:.0f} ms over {row.changes} changes",
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
    parser.add_argument("--receiver", metavar="PORT_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--produce", nargs=3, metavar="X", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_serve_receiver(Path(args.receiver)))
    elif args.produce:
        url, rate, secs = args.produce
        asyncio.run(_produce(url, int(rate), float(secs)))
    else:
        asyncio.run(main(args.quick))
