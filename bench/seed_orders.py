"""Seed a PostgreSQL orders database with N work orders (default 1,000,000), fast.

Run from the repository root::

    python bench/seed_orders.py postgresql://user@host:5432/dbname [--orders 1000000]

The database must be empty (or already hold the orders schema without orders). The schema is
brought to revision ``--at`` (default ``0008``, the one before the console's indexes) by the
application's own migrations, then every row is written by a few ``INSERT ... SELECT`` over
``generate_series`` inside PostgreSQL (no row crosses the network), then the schema is
upgraded to head, so the seeded database also shows what the last migrations cost on a
database with data. ``REINDEX TABLE work_orders`` (the step docs/console.md asks for after
0015, whose copy leaves every index with an entry for each order's dead version) and
``VACUUM ANALYZE`` end it. About a minute per 100,000 orders on a busy
2-core machine, most of it index building.

The data is what the application writes, with distributions of a real site (fixed by a seed,
so two runs give the same rows):

- orders created evenly over ``--days`` (730) days up to now, ids in creation order; numbers
  ``WO-<UTC day>-<sequence>`` and the per-day counters as the application keeps them;
- alarm types from the default catalogue, skewed (a few types make most reports);
- 20 teams (``team-01``..``team-20``), 8 % of orders routed to none (no team, no deadlines);
  routed orders are due to be accepted in 30 minutes and resolved in 24 hours;
- 500 users (``u0001``..``u0500``), 25 per team; reporters skewed (a fifth of the users file
  most reports); an accepted or closed order's assignee is a member of its team;
- about 3,000 distinct locations (building, area, spot), the busy ones repeated most;
- statuses by age: older than 30 days mostly closed (88 %), rejected 6 %, accepted 3 %, open
  3 %; the last 30 days 40 % closed, 25 % accepted, 30 % open, 5 % rejected; accepted after 5
  minutes to 4 hours, closed 30 minutes to 3 days after that, some past their deadlines;
- the event log as the application writes it: ``created`` for every order, ``accepted`` and
  ``closed`` for the orders that were; 1 % of orders have a merged duplicate report.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from alembic import command  # noqa: E402

from snapreport.config import DEFAULT_ALARM_TYPES  # noqa: E402
from snapreport.orders.migrations import alembic_config  # noqa: E402

TEAMS = 20
USERS = 500
Progress = Callable[[str], None]

# Cumulative weights of DEFAULT_ALARM_TYPES (same order).
TYPE_WEIGHTS = (0.22, 0.30, 0.48, 0.66, 0.78, 0.88, 0.95, 1.0)
AREAS = (
    "B1停车场",
    "B2停车场",
    "东侧消防通道",
    "西侧消防通道",
    "大堂",
    "电梯厅",
    "楼梯间",
    "垃圾房",
    "南门广场",
    "北门岗亭",
    "地下车库入口",
    "屋顶平台",
    "设备间",
    "花园",
    "自行车棚",
)

DRAW = """
CREATE TEMP TABLE seed ON COMMIT DROP AS
SELECT i,
       $1::timestamptz - make_interval(secs => ($2::bigint - i) * $3::float8) AS created_at,
       random() AS r_type, random() AS r_team, random() AS r_user, random() AS r_status,
       random() AS r_loc, random() AS r_acc, random() AS r_close, random() AS r_member
FROM generate_series(1, $2::bigint) AS i;
"""

DERIVE = """
CREATE TEMP TABLE seeded ON COMMIT DROP AS
SELECT s.i, s.created_at,
       (ARRAY[{types}])[
         (SELECT min(k) FROM unnest(ARRAY[{weights}]::float8[]) WITH ORDINALITY AS w(v, k)
          WHERE s.r_type <= w.v)] AS alarm_type,
       CASE WHEN s.r_team < 0.08 THEN NULL
            ELSE 1 + floor((s.r_team - 0.08) / 0.92 * {teams})::int END AS team_no,
       1 + floor(power(s.r_user, 2.2) * {users})::int AS reporter_no,
       CASE WHEN s.created_at < $1::timestamptz - interval '30 days' THEN
              CASE WHEN s.r_status < 0.88 THEN 'closed' WHEN s.r_status < 0.94 THEN 'rejected'
                   WHEN s.r_status < 0.97 THEN 'accepted' ELSE 'open' END
            ELSE
              CASE WHEN s.r_status < 0.40 THEN 'closed' WHEN s.r_status < 0.65 THEN 'accepted'
                   WHEN s.r_status < 0.95 THEN 'open' ELSE 'rejected' END
       END AS status,
       floor(power(s.r_loc, 2.0) * 40)::int + 1 AS building,
       floor(s.r_loc * 997)::int % {area_count} + 1 AS area,
       floor(s.r_loc * 7919)::int % 5 + 1 AS spot,
       s.r_acc, s.r_close, s.r_member,
       -- the last 4 days: delays shrink with the age, so nothing happens after now
       least(1.0, extract(epoch FROM $1::timestamptz - s.created_at) / 345600) AS scale
FROM seed s;
"""

ALARMS = """
INSERT INTO alarms (id, alarm_type, description, confidence, image_key, location, reporter,
                    source, created_at, latitude, longitude)
SELECT d.i, d.alarm_type,
       d.alarm_type || '：' || d.building || '号楼' || (ARRAY[{areas}])[d.area]
         || '发现问题，'
         || (ARRAY['请尽快处理', '影响通行', '已持续两天', '有安全风险'])[1 + d.i % 4]
         || '。编号 ' || d.i,
       0.5 + d.r_acc / 2, 'photos/' || md5(d.i::text) || '.jpg',
       d.building || '号楼 ' || (ARRAY[{areas}])[d.area] || ' ' || d.spot || '号',
       'u' || lpad(d.reporter_no::text, 4, '0'),
       CASE WHEN d.i % 5 = 0 THEN 'web' ELSE 'wecom' END,
       d.created_at, 31.2 + d.building / 1000.0, 121.4 + d.spot / 1000.0
FROM seeded d;
"""

ORDERS = """
INSERT INTO work_orders (id, number, alarm_id, status, reporter, assignee, close_image_key,
                         close_verified, close_note, forced, closed_by, created_at, closed_at,
                         team, accepted_at, due_accept_at, due_resolve_at, escalation,
                         reject_reason)
SELECT t.i,
       'WO-' || to_char(t.created_at AT TIME ZONE 'UTC', 'YYYYMMDD') || '-'
         || lpad((row_number() OVER (PARTITION BY (t.created_at AT TIME ZONE 'UTC')::date
                                     ORDER BY t.i))::text, 4, '0'),
       t.i, t.status, t.reporter, t.assignee,
       CASE WHEN t.status = 'closed' THEN 'photos/close-' || md5(t.i::text) || '.jpg' END,
       CASE WHEN t.status = 'closed' THEN t.r_close < 0.9 END,
       CASE WHEN t.status = 'closed' THEN '已处理' END,
       false,
       CASE WHEN t.status = 'closed' THEN t.assignee END,
       t.created_at, t.closed_at, t.team, t.accepted_at,
       CASE WHEN t.team IS NOT NULL THEN t.created_at + interval '30 minutes' END,
       CASE WHEN t.team IS NOT NULL THEN t.created_at + interval '24 hours' END,
       0,
       CASE WHEN t.status = 'rejected' THEN '重复上报' END
FROM (
  SELECT d.*,
         'u' || lpad(d.reporter_no::text, 4, '0') AS reporter,
         CASE WHEN d.team_no IS NOT NULL THEN 'team-' || lpad(d.team_no::text, 2, '0') END AS team,
         CASE WHEN d.status IN ('accepted', 'closed') THEN
           'u' || lpad((coalesce(d.team_no, 1) + {teams} * floor(d.r_member * 25)::int)::text,
                       4, '0') END AS assignee,
         CASE WHEN d.status IN ('accepted', 'closed') THEN
           d.created_at + make_interval(secs => d.scale * (300 + power(d.r_acc, 3) * 14100))
           END AS accepted_at,
         CASE WHEN d.status = 'closed' THEN
           d.created_at + make_interval(secs => d.scale * (300 + power(d.r_acc, 3) * 14100
             + 1800 + power(d.r_close, 2) * 257400)) END AS closed_at
  FROM seeded d
) t;
"""

EVENTS = """
INSERT INTO order_events (order_id, kind, actor, detail, at)
SELECT o.id, 'created', o.reporter,
       a.alarm_type || ' @ ' || a.location || ' (source: ' || a.source || ')'
         || coalesce(', team ' || o.team, ''),
       o.created_at
FROM work_orders o JOIN alarms a ON a.id = o.alarm_id
UNION ALL
SELECT o.id, 'accepted', o.assignee, o.assignee, o.accepted_at
FROM work_orders o WHERE o.accepted_at IS NOT NULL
UNION ALL
SELECT o.id, 'closed', o.closed_by, o.close_note, o.closed_at
FROM work_orders o WHERE o.status = 'closed'
ORDER BY 1, 5;
"""

FINISH = """
INSERT INTO order_also_reported (order_id, user_id)
SELECT o.id, 'u' || lpad((1 + (o.id * 7) % {users})::text, 4, '0')
FROM work_orders o
WHERE o.id % 100 = 7 AND o.reporter <> 'u' || lpad((1 + (o.id * 7) % {users})::text, 4, '0');
INSERT INTO order_counters (day, last)
SELECT substr(number, 4, 8), max(substr(number, 13)::int) FROM work_orders GROUP BY 1;
SELECT setval(pg_get_serial_sequence('alarms', 'id'), (SELECT max(id) FROM alarms));
SELECT setval(pg_get_serial_sequence('work_orders', 'id'), (SELECT max(id) FROM work_orders));
"""


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def asyncpg_dsn(url: str) -> str:
    """A libpq DSN from a SQLAlchemy or libpq URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def migrate(url: str, revision: str) -> None:
    """Bring the orders schema to ``revision`` with the application's migrations."""
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))

    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade)
    finally:
        await engine.dispose()


async def seed(url: str, orders: int, *, days: int = 730, at: str = "0008",
               progress: Progress = print) -> dict[str, float]:  # fmt: skip
    """Seed ``orders`` orders into the empty database at ``url``; seconds per step."""
    timings: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        timings[name] = time.perf_counter() - started
        progress(f"  {name}: {timings[name]:.1f} s")

    started = time.perf_counter()
    progress(f"migrating to {at}")
    await migrate(url, at)
    step("schema", started)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if await connection.fetchval("SELECT count(*) FROM work_orders"):
            raise SystemExit("the database already holds orders: seed an empty one")
        now = await connection.fetchval("SELECT date_trunc('minute', now())")
        step_seconds = days * 86400 / orders
        fill = {
            "types": _quoted(DEFAULT_ALARM_TYPES),
            "weights": ", ".join(str(w) for w in TYPE_WEIGHTS),
            "teams": TEAMS,
            "users": USERS,
            "area_count": len(AREAS),
        }
        async with connection.transaction():
            started = time.perf_counter()
            progress(f"drawing {orders:,} orders over {days} days")
            await connection.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            await connection.execute("SELECT setseed(0.42)")
            await connection.execute(DRAW, now, orders, step_seconds)
            await connection.execute(DERIVE.format(**fill), now)
            step("draw", started)
            started = time.perf_counter()
            progress("writing alarms")
            await connection.execute(ALARMS.format(areas=_quoted(AREAS)))
            step("alarms", started)
            started = time.perf_counter()
            progress("writing work orders")
            await connection.execute(ORDERS.format(**fill))
            step("work_orders", started)
            started = time.perf_counter()
            progress("writing the event log")
            await connection.execute(EVENTS)
            step("order_events", started)
            started = time.perf_counter()
            await connection.execute(FINISH.format(**fill))
            step("merged reports and counters", started)
    finally:
        await connection.close()
    started = time.perf_counter()
    progress("upgrading the schema to head (the console's indexes)")
    await migrate(url, "head")
    step("upgrade to head", started)
    started = time.perf_counter()
    progress("REINDEX TABLE work_orders, VACUUM ANALYZE")
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("REINDEX TABLE work_orders")
        for table in ("alarms", "work_orders", "order_events", "order_also_reported"):
            await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()
    step("reindex work_orders, vacuum analyze", started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="postgresql://user@host:port/database (empty)")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--at", default="0008", help="revision to write the rows at")
    args = parser.parse_args()
    if args.orders < 1 or args.days < 1:
        parser.error("--orders and --days must be positive")
    timings = asyncio.run(seed(args.url, args.orders, days=args.days, at=args.at))
    print(f"seeded {args.orders:,} orders in {sum(timings.values()):.1f} s")


if __name__ == "__main__":
    main()
