"""The console's indexes and queries (migrations 0012 and 0015) on SQLite and PostgreSQL.

A database at revision 0008 is filled with a few thousand orders written as plain rows (every
status, teams and none, merged reports, reopened orders, deadlines met and missed, a few
``closed_at`` earlier than ``created_at``), brought to the revision before the console's
indexes, then upgraded by connecting (0015 copies each alarm's type and location onto its
order, which the code reads, so it cannot answer before). The answers of the list (every
filter, every page) and of the figures (every grouping, with and without visibility) are
compared with a plain reference: the rows as written, filtered, grouped and counted in Python
by the definitions of docs/console.md; after the upgrade, and again with the console's indexes
dropped (other plans, the same answers).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from snapreport.channels.http.stats import day_bins
from snapreport.orders.base import OrderQuery, StatsGrouping, StatsQuery
from snapreport.orders.database import create_orders_engine, parse_url
from snapreport.orders.migrations import alembic_config, current_revision, head_revision
from snapreport.orders.repository import SqlOrderRepository
from snapreport.orders.tables import (
    SEARCH_INDEXES,
    AlarmRow,
    AlsoReportedRow,
    Base,
    WorkOrderRow,
)
from tests.harness.outbox_kit import BACKENDS
from tests.harness.postgres_server import asyncpg_dsn

ORDERS = 2500
NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
START = NOW - timedelta(days=120)
ZONE = ZoneInfo("Asia/Shanghai")
TEAMS = ("fire", "property", "it")
USERS = tuple(f"user{i}" for i in range(30))
TYPES = ("消防通道堵塞", "漏水", "垃圾堆放", "Other")
PLACES = ("A区北门", "B区车库 2层", "3号楼 Lobby", "east gate", "West Gate 50%_off")
CONSOLE_INDEXES = "0012"
BEFORE_INDEXES = str(
    ScriptDirectory.from_config(alembic_config()).get_revision(CONSOLE_INDEXES).down_revision
)
NEW_INDEXES = {
    "ix_work_orders_status_id",
    "ix_work_orders_reporter_id",
    "ix_work_orders_assignee_id",
    "ix_work_orders_created_at_id",
    "ix_work_orders_team_created_at",
    "ix_work_orders_alarm_type_created_at",
    "ix_work_orders_closed_at_created_at",
    "ix_alarms_alarm_type_id",
}


@dataclass(frozen=True)
class Plain:
    """One order as the reference sees it."""

    id: int
    number: str
    status: str
    team: str | None
    reporter: str
    assignee: str | None
    alarm_type: str
    location: str
    description: str
    created_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    due_accept_at: datetime | None
    due_resolve_at: datetime | None
    merged: frozenset[str]


def rows(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Alarms, work orders and merged reports, drawn with a fixed seed."""
    draw = random.Random(seed)
    alarms: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    merged: list[dict[str, Any]] = []
    for i in range(1, ORDERS + 1):
        created = START + timedelta(minutes=i * 69 + draw.randint(0, 30))
        if i % 89 == 0:  # clocks apart: ids and creation times not in the same order
            created -= timedelta(days=45)
        elif i % 83 == 0:
            created += timedelta(days=20)
        team = draw.choice((*TEAMS, None))
        status = draw.choices(("open", "accepted", "closed", "rejected"), (2, 2, 5, 1))[0]
        assignee = draw.choice(USERS) if status in ("accepted", "closed") or i % 7 == 0 else None
        accepted = created + timedelta(minutes=draw.uniform(1, 300)) if assignee else None
        closed = None
        if status == "closed":
            closed = (accepted or created) + timedelta(minutes=draw.uniform(1, 3000))
            if i % 97 == 0:  # clocks apart: closed "before" it was created
                closed = created - timedelta(minutes=5)
        if status == "open" and i % 11 == 0:  # reopened: no acceptance, no close time
            accepted = None
        due = team is not None
        reporter = draw.choice(USERS)
        place = draw.choice(PLACES)
        alarm_type = draw.choice(TYPES)
        alarms.append(
            {
                "id": i,
                "alarm_type": alarm_type,
                "description": f"{alarm_type} 第{i}号 report #{i}",
                "confidence": 0.9,
                "image_key": None,
                "location": place,
                "reporter": reporter,
                "source": "web",
                "created_at": created,
                "latitude": None,
                "longitude": None,
            }
        )
        orders.append(
            {
                "id": i,
                "number": f"WO-{created:%Y%m%d}-{i:04d}",
                "alarm_id": i,
                "status": status,
                "reporter": reporter,
                "assignee": assignee,
                "forced": False,
                "closed_by": assignee if closed else None,
                "created_at": created,
                "closed_at": closed,
                "team": team,
                "accepted_at": accepted,
                "due_accept_at": created + timedelta(minutes=60) if due else None,
                "due_resolve_at": created + timedelta(hours=30) if due else None,
                "escalation": 0,
            }
        )
        if i % 13 == 0:
            merged.append({"order_id": i, "user_id": draw.choice(USERS)})
    return alarms, orders, merged


async def fill_at_0008(url: str) -> AsyncEngine:
    engine = create_orders_engine(parse_url(url), connect_timeout=10.0)
    alarms, orders, merged = rows()

    def migrate(connection: Connection, revision: str) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(migrate, "0008")
        await connection.execute(insert(Base.metadata.tables["alarms"]), alarms)
        await connection.execute(insert(Base.metadata.tables["work_orders"]), orders)
        await connection.execute(insert(Base.metadata.tables["order_also_reported"]), merged)
    # then up to the revision before the console's indexes, whose tables the code reads
    async with engine.begin() as connection:
        await connection.run_sync(migrate, BEFORE_INDEXES)
    return engine


def plain_orders(
    orders: list[dict[str, Any]], alarms: list[dict[str, Any]], merged: list[dict[str, Any]]
) -> list[Plain]:
    by_alarm = {a["id"]: a for a in alarms}
    joined: dict[int, set[str]] = {}
    for m in merged:
        joined.setdefault(m["order_id"], set()).add(m["user_id"])
    out = []
    for o in orders:
        a = by_alarm[o["alarm_id"]]
        out.append(
            Plain(
                id=o["id"],
                number=o["number"],
                status=o["status"],
                team=o["team"],
                reporter=o["reporter"],
                assignee=o["assignee"],
                alarm_type=a["alarm_type"],
                location=a["location"],
                description=a["description"],
                created_at=o["created_at"].astimezone(UTC),
                accepted_at=_utc(o["accepted_at"]),
                closed_at=_utc(o["closed_at"]),
                due_accept_at=_utc(o["due_accept_at"]),
                due_resolve_at=_utc(o["due_resolve_at"]),
                merged=frozenset(joined.get(o["id"], set())),
            )
        )
    return out


def written() -> list[Plain]:
    """The orders ``fill_at_0008`` writes, as the reference sees them."""
    alarms, orders, merged = rows()
    return plain_orders(orders, alarms, merged)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def read_plain(engine: AsyncEngine) -> list[Plain]:
    """Every order, read with plain SELECTs (no filter, no index in play)."""
    async with engine.connect() as connection:
        alarms = [dict(r._mapping) for r in await connection.execute(select(AlarmRow.__table__))]
        orders = [
            dict(r._mapping)
            for r in await connection.execute(select(WorkOrderRow.__table__).order_by("id"))
        ]
        merged = [
            dict(r._mapping) for r in await connection.execute(select(AlsoReportedRow.__table__))
        ]
    return plain_orders(orders, alarms, merged)


def sees(viewer: tuple[str, frozenset[str]] | None) -> Callable[[Plain], bool]:
    if viewer is None:
        return lambda o: True
    user, teams = viewer
    return lambda o: (
        (o.team is not None and o.team in teams)
        or user in (o.reporter, o.assignee)
        or user in o.merged
    )


def matches(query: OrderQuery, o: Plain) -> bool:
    if query.statuses and o.status not in query.statuses:
        return False
    for wanted, value in (
        (query.team, o.team),
        (query.assignee, o.assignee),
        (query.reporter, o.reporter),
        (query.alarm_type, o.alarm_type),
    ):
        if wanted is not None and wanted != value:
            return False
    if query.created_from is not None and o.created_at < query.created_from:
        return False
    if query.created_to is not None and o.created_at >= query.created_to:
        return False
    if query.text is not None:
        needle = query.text.strip().casefold()
        if not any(needle in field.lower() for field in (o.location, o.description, o.number)):
            return False
    if query.overdue_at is not None:
        now = query.overdue_at
        late_accept = o.status == "open" and o.due_accept_at is not None and o.due_accept_at < now
        late_resolve = (
            o.status in ("open", "accepted")
            and o.due_resolve_at is not None
            and o.due_resolve_at < now
        )
        if not (late_accept or late_resolve):
            return False
    if query.involving is not None and query.involving not in (o.reporter, o.assignee, *o.merged):
        return False
    return sees(query.visible_to)(o)


VIEWERS: list[tuple[str, frozenset[str]] | None] = [
    None,
    ("user3", frozenset({"fire"})),
    ("user4", frozenset({"property", "it"})),
    ("user5", frozenset()),
]
QUERIES = [
    OrderQuery(),
    OrderQuery(statuses=("open",)),
    OrderQuery(statuses=("rejected",)),
    OrderQuery(team="fire"),
    OrderQuery(assignee="user7"),
    OrderQuery(reporter="user8"),
    OrderQuery(alarm_type="漏水"),
    OrderQuery(created_from=NOW - timedelta(days=50), created_to=NOW - timedelta(days=20)),
    # ended longer ago than it lasted: read as an id range first (the empty one: no order)
    OrderQuery(created_from=NOW - timedelta(days=100), created_to=NOW - timedelta(days=90)),
    OrderQuery(created_from=NOW - timedelta(days=400), created_to=NOW - timedelta(days=390)),
    OrderQuery(created_to=NOW - timedelta(days=60), team="property"),
    OrderQuery(statuses=("open", "accepted"), team="it"),
    OrderQuery(text="b区"),
    OrderQuery(text="LOBBY"),
    OrderQuery(text="50%_"),
    OrderQuery(text="第12"),
    OrderQuery(text=f"WO-{NOW - timedelta(days=60):%Y%m%d}"),
    OrderQuery(overdue_at=NOW),
    OrderQuery(involving="user9"),
    OrderQuery(statuses=("accepted",), team="it", alarm_type="Other"),
]


async def listed(repo: SqlOrderRepository, query: OrderQuery) -> list[str]:
    """Every page, walked with the cursor as the list and the export do."""
    numbers: list[str] = []
    after: int | None = None
    while True:
        page = await repo.page(replace(query, after_id=after), limit=97)
        numbers += [o.number for o in page.orders]
        if page.next_cursor is None:
            return numbers
        after = int(page.next_cursor)


def expected_list(plain: list[Plain], query: OrderQuery) -> list[str]:
    return [o.number for o in sorted(plain, key=lambda o: -o.id) if matches(query, o)]


def stats_query(
    group_by: StatsGrouping, viewer: tuple[str, frozenset[str]] | None, days: int
) -> StatsQuery:
    upper = datetime.combine(
        NOW.astimezone(ZONE).date() + timedelta(days=1), datetime.min.time(), ZONE
    )
    lower = upper - timedelta(days=days)
    return StatsQuery(
        group_by=group_by,
        created_from=lower,
        created_to=upper,
        now=NOW,
        days=day_bins(lower, upper, ZONE) if group_by == "day" else (),
        visible_to=viewer,
        limit=3,
    )


def expected_stats(plain: list[Plain], query: StatsQuery) -> list[dict[str, Any]]:
    """The figures by docs/console.md's definitions."""
    seen = [
        o for o in plain if sees(query.visible_to)(o) and query.alarm_type in (None, o.alarm_type)
    ]
    cohort = [o for o in seen if query.created_from <= o.created_at < query.created_to]

    def key(o: Plain) -> str | None:
        if query.group_by == "day":
            for day in query.days:
                if day.start <= o.created_at < day.end:
                    return day.key
            raise AssertionError("an order outside every day")
        value: str | None = getattr(o, query.group_by)
        return value

    def breached(o: Plain) -> bool:
        if o.status == "rejected":
            return False
        late_accept = o.due_accept_at is not None and (
            (o.accepted_at or o.closed_at or query.now) > o.due_accept_at
        )
        late_close = o.due_resolve_at is not None and (
            (o.closed_at or query.now) > o.due_resolve_at
        )
        return late_accept or late_close

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    groups: dict[str | None, list[Plain]] = {}
    for o in cohort:
        groups.setdefault(key(o), []).append(o)

    def figures(k: str | None, members: list[Plain], backlog: int | None) -> dict[str, Any]:
        return {
            "key": k,
            "created": len(members),
            "closed": sum(o.status == "closed" for o in members),
            "rejected": sum(o.status == "rejected" for o in members),
            "open_backlog": backlog
            if backlog is not None
            else sum(o.status in ("open", "accepted") for o in members),
            "median_minutes_to_accept": median(
                [
                    (o.accepted_at - o.created_at).total_seconds() / 60
                    for o in members
                    if o.accepted_at is not None
                ]
            ),
            "median_minutes_to_close": median(
                [
                    (o.closed_at - o.created_at).total_seconds() / 60
                    for o in members
                    if o.status == "closed" and o.closed_at is not None
                ]
            ),
            "sla_breaches": sum(breached(o) for o in members),
        }

    if query.group_by == "day":
        out = []
        for day in query.days:
            backlog = sum(
                1
                for o in seen
                if o.created_at < day.end
                and (o.closed_at is None or o.closed_at >= day.end)
                and o.status != "rejected"
            )
            out.append(figures(day.key, groups.get(day.key, []), backlog))
        return out
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0] is None, kv[0] or ""))
    if query.group_by == "location":
        ordered = ordered[: query.limit]
    return [figures(k, members, None) for k, members in ordered]


def as_dicts(groups: Any) -> list[dict[str, Any]]:
    return [
        {
            name: getattr(g, name)
            for name in (
                "key",
                "created",
                "closed",
                "rejected",
                "open_backlog",
                "median_minutes_to_accept",
                "median_minutes_to_close",
                "sla_breaches",
            )
        }
        for g in groups
    ]


def same_figures(got: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> None:
    assert [g["key"] for g in got] == [w["key"] for w in wanted]
    for g, w in zip(got, wanted, strict=True):
        for name, value in w.items():
            if name.startswith("median") and value is not None:
                # julianday/epoch arithmetic against Python's: equal up to the rounding step
                assert g[name] == pytest.approx(value, abs=0.11), (w["key"], name)
            else:
                assert g[name] == value, (w["key"], name)


async def answers(repo: SqlOrderRepository, plain: list[Plain]) -> dict[str, Any]:
    """The list and figures answers, each checked against the reference."""
    found: dict[str, Any] = {}
    for viewer in VIEWERS:
        for query in QUERIES:
            scoped = replace(query, visible_to=viewer)
            got = await listed(repo, scoped)
            assert got == expected_list(plain, scoped), (query, viewer)
            found[repr(scoped)] = got
            skipped = await repo.page(replace(scoped, offset=41), limit=13)
            assert [o.number for o in skipped.orders] == got[41:54], (query, viewer)
        for group_by in ("day", "alarm_type", "team", "location"):
            for days in (30, 366):
                if group_by == "day" and days > 40 and viewer is not None:
                    continue  # a long day grouping is compared once, for every order
                grouped = stats_query(group_by, viewer, days)
                got_stats = as_dicts(await repo.stats(grouped))
                same_figures(got_stats, expected_stats(plain, grouped))
                found[repr(grouped)] = got_stats
        of_type = replace(stats_query("day", viewer, 30), alarm_type="漏水")
        got_stats = as_dicts(await repo.stats(of_type))
        same_figures(got_stats, expected_stats(plain, of_type))
        found[repr(of_type)] = got_stats
    return found


@pytest.fixture
async def filled(orders_url: str) -> str:
    engine = await fill_at_0008(orders_url)
    await engine.dispose()
    return orders_url


@pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)
async def test_upgrading_a_filled_database_keeps_every_answer(
    filled: str,
) -> None:
    url = filled
    plain = written()
    assert len(plain) == ORDERS
    repo = await SqlOrderRepository.connect(url, clock=NOW.timestamp)
    try:

        def schema(connection: Connection) -> tuple[str | None, set[str]]:
            inspector = inspect(connection)
            names = {
                index["name"]
                for table in ("alarms", "work_orders")
                for index in inspector.get_indexes(table)
                if index["name"]
            }
            return current_revision(connection), names

        async with repo.engine.connect() as connection:
            revision, indexes = await connection.run_sync(schema)
        assert revision == head_revision()
        assert indexes >= NEW_INDEXES
        assert "ix_work_orders_status_created" not in indexes
        if repo.engine.dialect.name == "postgresql":
            assert set(SEARCH_INDEXES) <= indexes
        # the same rows, each order with its alarm's type and location
        assert await read_plain(repo.engine) == plain
        async with repo.engine.connect() as connection:
            copies = await connection.execute(
                select(WorkOrderRow.id, WorkOrderRow.alarm_type, WorkOrderRow.location)
            )
            assert {row.id: (row.alarm_type, row.location) for row in copies} == {
                o.id: (o.alarm_type, o.location) for o in plain
            }
        indexed = await answers(repo, plain)
        async with repo.engine.begin() as connection:
            for name in sorted(NEW_INDEXES):
                await connection.execute(text(f"DROP INDEX {name}"))
        assert await answers(repo, plain) == indexed
    finally:
        await repo.aclose()


async def test_without_pg_trgm_the_upgrade_leaves_text_search_unindexed(
    postgres_url: str,
) -> None:
    """A role that may not create extensions: no trigram indexes, the same text matches."""
    name = f"notrgm_{random.randrange(10**9)}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.execute(f"CREATE ROLE {name} LOGIN")
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.execute(f"REVOKE CREATE ON DATABASE {name} FROM PUBLIC")
    finally:
        await admin.close()
    owner = await asyncpg.connect(asyncpg_dsn(postgres_url.rsplit("/", 1)[0] + f"/{name}"))
    try:
        await owner.execute(f"GRANT ALL ON SCHEMA public TO {name}")
    finally:
        await owner.close()
    base = postgres_url.rsplit("/", 1)[0].replace("postgres@", f"{name}@")
    url = f"{base}/{name}"
    try:
        await (await fill_at_0008(url)).dispose()
        plain = written()
        repo = await SqlOrderRepository.connect(url)
        try:
            async with repo.engine.connect() as connection:
                found = await connection.execute(
                    text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%trgm'")
                )
                assert found.all() == []
                extensions = await connection.execute(text("SELECT extname FROM pg_extension"))
                assert "pg_trgm" not in {row[0] for row in extensions}
            for q in ("b区", "LOBBY", "第12"):
                query = OrderQuery(text=q)
                assert await listed(repo, query) == expected_list(plain, query)
        finally:
            await repo.aclose()
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f"DROP ROLE IF EXISTS {name}")
        finally:
            await admin.close()
