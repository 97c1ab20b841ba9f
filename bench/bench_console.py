"""Console at scale: list pages, dashboard figures and the CSV export on 1,000,000 orders.

Run from the repository root: ``python bench/bench_console.py`` (``--quick``: 20,000 orders,
fewer rounds, a smoke run that does not rewrite the page). It starts a throwaway PostgreSQL
(``tests/harness/postgres_server.py``), seeds it with ``bench/seed_orders.py`` (a few minutes
for a million orders), runs the real application in-process (the ASGI app with its lifespan,
driven through ``httpx.ASGITransport``: routing, authentication, validation, dispatch, the
repository, JSON rendering; no sockets) and rewrites ``docs/benchmarks-console.md``.
``--keep DIR`` seeds into ``DIR`` and leaves it there; ``--reuse DIR`` starts that server again
instead of seeding (the figures then come in a minute or two). ``--only list stats`` measures
only those parts (of list, stats, export) and leaves the page as it is.

- **List**: ``GET /api/v1/orders`` (first page, 100 orders) per filter, as an admin (every
  order), a team lead and a team member (their teams' orders and their own), p50/p95 over the
  rounds. The floor is the same SQL the application sent for that request (recorded from the
  engine), replayed on a bare asyncpg connection with the application's session settings:
  what the database alone costs.
- **Figures**: ``GET /api/v1/stats`` per grouping, for the default range (30 days) and the
  widest the API allows (366 days; "all time" on this data is twice that and is refused by the
  API), with the same floor.
- **Export**: ``GET /api/v1/orders.csv`` of 10,000 rows and of every row, each in a fresh
  process that drives the ASGI app directly (the body is counted and dropped, as a socket
  would send it); its peak RSS (VmHWM, reset after start-up) is the figure: flat means
  constant memory. The floor for time is the same keyset batches read by asyncpg alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.harness.postgres_server import (  # noqa: E402
    PostgresServer,
    _find_binary,
    _free_port,
    start_postgres,
)
from tests.integration.live_server import IsolatedSettings  # noqa: E402

import seed_orders  # noqa: E402
from snapreport.channels.http import create_app  # noqa: E402
from snapreport.config import Settings  # noqa: E402
from snapreport.orders.database import POSTGRES_SETTINGS  # noqa: E402

DOC = ROOT / "docs" / "benchmarks-console.md"
SEED_RECORD = "seed.json"  # the seeding's timings, kept with the server's files
COMMAND = "python bench/bench_console.py"
DATABASE = "console"
ADMIN_TOKEN = "bench-admin-token-0123456789"
API_TOKEN = "bench-api-token-0123456789"
LIST_TARGET_MS = 50.0
STATS_TARGET_MS = 300.0
LEAD = "u0003"  # lead of team-03
MEMBER = "u0027"  # member of team-07
CALLERS = {"admin": None, "lead": LEAD, "member": MEMBER}
GROUPINGS = ("day", "alarm_type", "team", "location")
PARTS = ("list", "stats", "export")


def rules_toml() -> str:
    """20 teams of 25 users each, as the seed assigns them; the first member leads."""
    lines: list[str] = []
    for team in range(1, seed_orders.TEAMS + 1):
        users = [f"u{team + seed_orders.TEAMS * k:04d}" for k in range(25)]
        lines += [
            f"[teams.team-{team:02d}]",
            f'name = "Team {team}"',
            f"members = {json.dumps(users[1:])}",
            f"leads = {json.dumps(users[:1])}",
            'assign = "claim"',
            "",
        ]
    return "\n".join(lines)


def list_filters(now: dt.datetime) -> dict[str, dict[str, str]]:
    """One request per filter; values picked to be common, rare and far back in time."""
    year_ago = now - dt.timedelta(days=365)
    old_day = year_ago.strftime("%Y%m%d")
    return {
        "(none)": {},
        "status=open": {"status": "open"},
        "status=rejected": {"status": "rejected"},
        "team": {"team": "team-05"},
        "assignee": {"assignee": "u0045"},
        "reporter (busy)": {"reporter": "u0002"},
        "reporter (rare)": {"reporter": "u0480"},
        "alarm_type (common)": {"alarm_type": "消防通道堵塞"},
        "alarm_type (rare)": {"alarm_type": "其他"},
        "from/to last 7 days": {"from": (now - dt.timedelta(days=7)).isoformat()},
        "from/to a year ago": {
            "from": year_ago.isoformat(),
            "to": (year_ago + dt.timedelta(days=30)).isoformat(),
        },
        "q location (common)": {"q": "花园"},
        "q location (rare)": {"q": "37号楼 屋顶平台 4号"},
        "q description (one order)": {"q": "编号 424242"},
        "q number (a year ago)": {"q": f"WO-{old_day}-00"},
        "overdue": {"overdue": "true"},
        "user_id": {"user_id": "u0100"},
    }


@dataclass
class Timing:
    app: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    rows: int = 0

    def p(self, which: str, q: float) -> float:
        values = sorted(getattr(self, which))
        if not values:
            return float("nan")
        return float(values[min(len(values) - 1, round(q * (len(values) - 1)))])


class Recorder:
    """The order-reading SQL statements an engine sends while ``active`` (the app's own
    background loops, the outbox worker's claims, are left out)."""

    def __init__(self) -> None:
        self.active = False
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        reads_orders = "work_orders" in statement or "order_also_reported" in statement
        if self.active and reads_orders and "FOR UPDATE" not in statement:
            self.statements.append((statement, tuple(parameters or ())))


def settings_for(url: str, data_dir: Path) -> Settings:
    rules = data_dir / "rules.toml"
    rules.write_text(rules_toml(), encoding="utf-8")
    return IsolatedSettings.model_validate(
        {
            "data_dir": data_dir,
            "orders": {"url": url},
            "media": {"root": data_dir / "media"},
            "dispatch": {"rules_file": rules},
            "api_token": API_TOKEN,
            "admin_token": ADMIN_TOKEN,
        }
    )


def headers(caller: str | None) -> dict[str, str]:
    if caller is None:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return {"Authorization": f"Bearer {API_TOKEN}", "X-Acting-User": caller}


async def measure(
    client: httpx.AsyncClient,
    recorder: Recorder,
    raw: asyncpg.Connection,
    path: str,
    params: dict[str, str],
    caller: str | None,
    rounds: int,
    key: str,
) -> Timing:
    timing = Timing()
    recorder.statements.clear()
    recorder.active = True
    answer = await client.get(path, params=params, headers=headers(caller))
    recorder.active = False
    if answer.status_code != 200:
        raise SystemExit(f"{path} {params} as {caller}: {answer.status_code} {answer.text}")
    timing.rows = len(answer.json()[key])
    statements = list(recorder.statements)
    for _ in range(rounds):
        started = time.perf_counter()
        answer = await client.get(path, params=params, headers=headers(caller))
        timing.app.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        async with raw.transaction(readonly=True):
            for statement, args in statements:
                await raw.fetch(statement, *args)
        timing.floor.append((time.perf_counter() - started) * 1000)
    return timing


def explain_text(statements: list[tuple[str, tuple[Any, ...]]]) -> str:
    return statements[0][0] if statements else ""


@contextmanager
def postgres(args: argparse.Namespace) -> Iterator[tuple[PostgresServer, bool]]:
    """The server: started again from ``--reuse``, or a new one (kept with ``--keep``)."""
    if args.reuse:
        root = Path(args.reuse)
        server = PostgresServer(
            root=root,
            port=_free_port(),
            pg_ctl=_find_binary("pg_ctl"),
            run_as="postgres" if os.geteuid() == 0 else None,
        )
        server.start()
        try:
            yield server, True
        finally:
            server.stop()
        return
    server = start_postgres()
    try:
        yield server, False
    finally:
        if args.keep:
            server.stop()
            print(f"kept the seeded server in {server.root} (--reuse {server.root})")
        else:
            server.destroy()


def export_child(url: str, params: dict[str, str]) -> dict[str, Any]:
    """Run in a fresh process: export through the ASGI app, the body counted and dropped."""

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(settings_for(url, Path(tmp)))
            async with app.router.lifespan_context(app):
                body = 0
                lines = 0

                requested = False
                finished = asyncio.Event()

                async def receive() -> dict[str, Any]:
                    # the request once; then a disconnect only when the answer is complete
                    nonlocal requested
                    if not requested:
                        requested = True
                        return {"type": "http.request", "body": b"", "more_body": False}
                    await finished.wait()
                    return {"type": "http.disconnect"}

                async def send(message: MutableMapping[str, Any]) -> None:
                    nonlocal body, lines
                    if message["type"] == "http.response.start":
                        assert message["status"] == 200, message
                    elif message["type"] == "http.response.body":
                        chunk = message.get("body", b"")
                        body += len(chunk)
                        lines += chunk.count(b"\r\n")
                        if not message.get("more_body", False):
                            finished.set()

                auth = headers(None)["Authorization"].encode()
                scope = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "GET",
                    "scheme": "http",
                    "path": "/api/v1/orders.csv",
                    "raw_path": b"/api/v1/orders.csv",
                    "query_string": urlencode(params).encode(),
                    "root_path": "",
                    "headers": [(b"host", b"localhost"), (b"authorization", auth)],
                    "client": ("127.0.0.1", 50000),
                    "server": ("localhost", 80),
                }
                # warm up (imports, pools), then count the peak from here
                await app(dict(scope, query_string=b"reporter=u9999"), receive, send)
                requested = False
                finished.clear()
                reset = True
                try:
                    Path("/proc/self/clear_refs").write_text("5")
                except OSError:
                    reset = False
                before = _status_kb("VmRSS")
                body = lines = 0
                started = time.perf_counter()
                await app(scope, receive, send)
                seconds = time.perf_counter() - started
                return {
                    "rows": lines - 1,
                    "bytes": body,
                    "seconds": seconds,
                    "rss_before_kb": before,
                    "peak_kb": _status_kb("VmHWM"),
                    "peak_reset": reset,
                }

    return asyncio.run(run())


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


async def raw_export_seconds(dsn: str, params: dict[str, str], limit: int) -> float:
    """The export's keyset batches (200 newest-first rows joined to their alarm) by asyncpg."""
    connection = await asyncpg.connect(dsn)
    try:
        where = "TRUE"
        args: list[Any] = []
        if "from" in params:
            args.append(dt.datetime.fromisoformat(params["from"]))
            where += f" AND o.created_at >= ${len(args)}"
        if "to" in params:
            args.append(dt.datetime.fromisoformat(params["to"]))
            where += f" AND o.created_at < ${len(args)}"
        # the filter text is ours, the values are parameters
        sql = (
            "SELECT o.*, a.alarm_type, a.location, a.description FROM work_orders o "  # noqa: S608
            f"JOIN alarms a ON a.id = o.alarm_id WHERE {where} AND o.id < ${len(args) + 1} "
            f"ORDER BY o.id DESC LIMIT {limit}"
        )
        started = time.perf_counter()
        after = 2**62
        while True:
            rows = await connection.fetch(sql, *args, after)
            if len(rows) < limit:
                break
            after = rows[-1]["id"]
        return time.perf_counter() - started
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"list": {}, "stats": {}, "export": {}}
    with postgres(args) as (server, reused):
        admin_dsn = server.admin_url.replace("postgresql+asyncpg://", "postgresql://")
        dsn = admin_dsn.rsplit("/", 1)[0] + "/" + DATABASE
        url = dsn.replace("postgresql://", "postgresql+asyncpg://")
        if not reused:
            admin = await asyncpg.connect(admin_dsn)
            try:
                # C.utf8 character classes: pg_trgm sees Chinese characters as letters
                await admin.execute(
                    f"CREATE DATABASE {DATABASE} TEMPLATE template0 ENCODING 'UTF8' "
                    "LC_COLLATE 'C' LC_CTYPE 'C.utf8'"
                )
            finally:
                await admin.close()
            results["seed"] = await seed_orders.seed(url, args.orders)
            (server.root / SEED_RECORD).write_text(json.dumps(results["seed"]))
        elif (server.root / SEED_RECORD).exists():
            results["seed"] = json.loads((server.root / SEED_RECORD).read_text())
        raw = await asyncpg.connect(dsn, server_settings=POSTGRES_SETTINGS)  # as the app's
        results["orders"] = await raw.fetchval("SELECT count(*) FROM work_orders")
        results["postgres"] = await raw.fetchval("SHOW server_version")
        now = dt.datetime.now(dt.UTC)
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(settings_for(url, Path(tmp)))
            async with app.router.lifespan_context(app):
                engine = app.state.http.app.orders.engine
                recorder = Recorder()
                event.listen(engine.sync_engine, "before_cursor_execute", recorder)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://localhost", timeout=120
                ) as client:
                    lists = list_filters(now) if "list" in args.only else {}
                    for name, params in lists.items():
                        for who, caller in CALLERS.items():
                            t = await measure(
                                client, recorder, raw, "/api/v1/orders", params, caller,
                                args.rounds, "orders",
                            )  # fmt: skip
                            results["list"][(name, who)] = t
                            print(
                                f"list {name:28} {who:6} p50 {t.p('app', 0.5):7.1f} "
                                f"p95 {t.p('app', 0.95):7.1f} floor p95 {t.p('floor', 0.95):7.1f} "
                                f"ms ({t.rows} rows)",
                                flush=True,
                            )
                    today = now.date()
                    ranges = {
                        "30 days (default)": {},
                        "366 days (widest)": {
                            "from": (today - dt.timedelta(days=365)).isoformat(),
                            "to": (today + dt.timedelta(days=1)).isoformat(),
                        },
                    }
                    for span, bounds in ranges.items() if "stats" in args.only else ():
                        for grouping in GROUPINGS:
                            for who, caller in CALLERS.items():
                                t = await measure(
                                    client, recorder, raw, "/api/v1/stats",
                                    {"group_by": grouping, **bounds}, caller,
                                    args.stats_rounds, "groups",
                                )  # fmt: skip
                                results["stats"][(span, grouping, who)] = t
                                print(
                                    f"stats {span:18} {grouping:10} {who:6} "
                                    f"p50 {t.p('app', 0.5):7.1f} p95 {t.p('app', 0.95):7.1f} "
                                    f"floor p95 {t.p('floor', 0.95):7.1f} ms",
                                    flush=True,
                                )
        await raw.close()
        ten_k = {"from": (now - dt.timedelta(days=730 * 10_000 / args.orders)).isoformat()}
        exports = (("10k", ten_k), ("all", {})) if "export" in args.only else ()
        for label, params in exports:
            answer = subprocess.run(
                [sys.executable, __file__, "--export-child", url, json.dumps(params)],
                capture_output=True, text=True, check=False, timeout=3600,
            )  # fmt: skip
            if answer.returncode != 0:
                raise SystemExit(f"export child failed:\n{answer.stdout}\n{answer.stderr}")
            child = json.loads(answer.stdout.strip().splitlines()[-1])
            child["floor_seconds"] = await raw_export_seconds(dsn, params, 200)
            results["export"][label] = child
            print(f"export {label}: {child}", flush=True)
    return results


def load_line() -> str:
    one, _, _ = os.getloadavg()
    return f"1-minute load average {one:.2f} at the end of the run"


def mark(value: float, target: float) -> str:
    return "met" if value <= target else "**MISSED**"


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Console at scale: list, figures and export on 1,000,000 orders",
        "",
        f"Produced by `{COMMAND}` on {when}. Do not edit by hand: run the command again (it "
        "starts its own PostgreSQL and seeds it; `--keep DIR` / `--reuse DIR` skip the seeding "
        "on later runs).",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"{load_line()} (the machine is shared: figures move by ±30 % between runs, ratios "
        "to the floor less).",
        f"- PostgreSQL {results['postgres']} (durability off, as the test harness runs it), "
        f"{results['orders']:,} orders seeded by `bench/seed_orders.py`; Python "
        f"{platform.python_version()}; the application in-process (ASGI, `httpx.ASGITransport`).",
        f"- {args.rounds} rounds per list request, {args.stats_rounds} per figures request; "
        "p50/p95 of those. **Floor**: the same SQL statements the application sent for that "
        "request (recorded from its engine), replayed in a read-only transaction on a bare "
        "asyncpg connection with the application's connection settings (every statement "
        "planned for its values, no JIT, no parallel workers): the database's share. The gap "
        "is the application's (ORM, dispatch, validation, JSON).",
        "",
    ]
    if "seed" in results:
        seed = results["seed"]
        out += [
            "## Seeding",
            "",
            "| Step | Seconds |",
            "|---|---:|",
            *(f"| {name} | {seconds:.1f} |" for name, seconds in seed.items()),
            "",
            '"upgrade to head" is migrations 0012 to 0015 building the console\'s indexes '
            "and copying each alarm's type and location onto its order on the seeded tables: "
            "the time an existing installation of this size takes to upgrade (writes to the "
            'orders wait meanwhile); "reindex work_orders" is the step docs/console.md asks '
            "for after it.",
            "",
        ]
    out += [
        f"## List: `GET /api/v1/orders`, first page of 100 (target p95 ≤ {LIST_TARGET_MS:.0f} ms)",
        "",
        "Admin sees every order; the lead (`u0003`, team-03) and the member (`u0027`, team-07) "
        "their team's orders and those they reported, were assigned or merged into.",
        "",
        "| Filter | Caller | Rows | p50 ms | p95 ms | Floor p95 ms | Target |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for (name, who), t in results["list"].items():
        p95 = t.p("app", 0.95)
        out.append(
            f"| {name} | {who} | {t.rows} | {t.p('app', 0.5):.1f} | {p95:.1f} | "
            f"{t.p('floor', 0.95):.1f} | {mark(p95, LIST_TARGET_MS)} |"
        )
    out += [
        "",
        f"## Figures: `GET /api/v1/stats` (target p95 ≤ {STATS_TARGET_MS:.0f} ms)",
        "",
        "The application runs a figure's statements at once, each on a connection of its own "
        "(every order by day: two halves of the days and the backlog; by type or team: two "
        "halves of the values); the floor replays them one after another on one connection, so "
        "in those rows the floor is above the application.",
        "",
        "| Range | group_by | Caller | Groups | p50 ms | p95 ms | Floor p95 ms | Target |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for (span, grouping, who), t in results["stats"].items():
        p95 = t.p("app", 0.95)
        out.append(
            f"| {span} | {grouping} | {who} | {t.rows} | {t.p('app', 0.5):.1f} | {p95:.1f} | "
            f"{t.p('floor', 0.95):.1f} | {mark(p95, STATS_TARGET_MS)} |"
        )
    export = results["export"]
    small, full = export["10k"], export["all"]
    flat = full["peak_kb"] <= small["peak_kb"] * 1.1 + 4096
    out += [
        "",
        "## Export: `GET /api/v1/orders.csv` (target: constant memory)",
        "",
        "Each export runs in a fresh process (the app, its lifespan, a warm-up request); the "
        "peak RSS is the kernel's high-water mark (VmHWM), reset just before the export "
        f"({'done' if small['peak_reset'] else 'not permitted here: peaks include start-up'}).",
        "",
        "| Rows | MB written | Seconds | Rows/s | Floor seconds (asyncpg, same batches) | "
        "RSS before MB | Peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in (small, full):
        out.append(
            f"| {item['rows']:,} | {item['bytes'] / 1e6:.1f} | {item['seconds']:.1f} | "
            f"{item['rows'] / item['seconds']:,.0f} | {item['floor_seconds']:.1f} | "
            f"{item['rss_before_kb'] / 1024:.0f} | {item['peak_kb'] / 1024:.0f} |"
        )
    out += [
        "",
        f"Peak memory {'flat' if flat else 'NOT flat'}: {full['peak_kb'] / 1024:.0f} MB for "
        f"{full['rows']:,} rows against {small['peak_kb'] / 1024:.0f} MB for "
        f"{small['rows']:,} (target {'met' if flat else '**MISSED**'}).",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--stats-rounds", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the seeded server")
    parser.add_argument("--reuse", help="a server directory kept by --keep")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=PARTS,
        help="measure only these parts (the page is rewritten only when all are measured)",
    )
    parser.add_argument("--export-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        print(json.dumps(export_child(args.export_child[0], json.loads(args.export_child[1]))))
        return
    if args.quick:
        args.orders, args.rounds, args.stats_rounds = 20_000, 5, 3
    results = asyncio.run(run(args))
    if args.quick or set(args.only) != set(PARTS):
        print("--quick or --only: docs/benchmarks-console.md left as it is")
        return
    DOC.write_text(render(results, args), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
