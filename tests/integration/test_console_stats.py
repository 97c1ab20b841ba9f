"""``GET /api/v1/stats`` on SQLite and PostgreSQL: a known data set of five orders over two
local days (one filed at 01:00 Shanghai time, the day before in UTC), every figure of every
grouping, who sees which orders, and refusals of bad ranges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS
from tests.integration.console_kit import ADMIN, act, as_user, console_app, file_order
from tests.integration.http_kit import Running

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC).timestamp()  # 08:00 on 1 Nov in Shanghai
MINUTE = 60.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def app(orders_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Running]:
    async with console_app(tmp_path, orders_url, clock) as r:
        yield r


def at(clock: FakeClock, minutes: float) -> None:
    """Move the clock to ``minutes`` after T0."""
    clock.advance(T0 + minutes * MINUTE - clock.now)


async def known_data(app: Running, clock: FakeClock) -> dict[str, str]:
    """Five orders (numbers by name): fire O1 accepted in 10 min and closed after 60; fire O2
    accepted after 40 (30 allowed); property O3 rejected (reported by alice); property O5 at
    01:00 local on 2 Nov, accepted after 20 (10 allowed), closed after 50; fire O4 on 2 Nov,
    never accepted. The clock ends at 11:00 local on 2 Nov."""
    n: dict[str, str] = {}
    n["O1"] = (await file_order(app))["number"]
    at(clock, 10)
    await act(app, "lisi", n["O1"], "accept")
    at(clock, 60)
    n["O2"] = (await file_order(app))["number"]
    await act(app, "lisi", n["O1"], "close", note="清理完毕")
    at(clock, 100)
    await act(app, "wangwu", n["O2"], "accept")
    at(clock, 120)
    n["O3"] = (await file_order(app, "B区车库", "垃圾堆放", reporter="alice"))["number"]
    at(clock, 125)
    await act(app, "pmlead", n["O3"], "reject", reason="不是问题")
    at(clock, 17 * 60)
    o5 = await file_order(app, "B区车库", "垃圾堆放")
    n["O5"] = o5["number"]
    at(clock, 17 * 60 + 20)
    await act(app, o5["assignee"], n["O5"], "accept")
    at(clock, 17 * 60 + 50)
    await act(app, o5["assignee"], n["O5"], "close", note="done")
    at(clock, 24 * 60)
    n["O4"] = (await file_order(app, alarm_type="消防设施损坏"))["number"]
    at(clock, 27 * 60)
    return n


async def stats(app: Running, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    answer = await app.client.get("/api/v1/stats", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    groups: list[dict[str, Any]] = answer.json()["groups"]
    return groups


def figures(
    created: int,
    closed: int,
    rejected: int,
    backlog: int,
    to_accept: float | None,
    to_close: float | None,
    breaches: int,
) -> dict[str, Any]:
    return {
        "created": created,
        "closed": closed,
        "rejected": rejected,
        "open_backlog": backlog,
        "median_minutes_to_accept": to_accept,
        "median_minutes_to_close": to_close,
        "sla_breaches": breaches,
    }


def by_key(groups: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {g["key"]: {k: v for k, v in g.items() if k != "key"} for g in groups}


async def test_figures_per_local_day(app: Running, clock: FakeClock) -> None:
    await known_data(app, clock)
    groups = await stats(app, ADMIN, group_by="day", **{"from": "2026-10-31", "to": "2026-11-03"})
    assert [g["key"] for g in groups] == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert by_key(groups) == {
        # nothing yet: zeros, so a chart's days are continuous
        "2026-10-31": figures(0, 0, 0, 0, None, None, 0),
        # O1, O2, O3: O2 still open at the day's end, O3 rejected, O2 accepted late;
        # the median of 10 and 40 minutes is their mean
        "2026-11-01": figures(3, 1, 1, 1, 25.0, 60.0, 1),
        # O5 (01:00 local, still 1 Nov in UTC) and O4: O2 and O4 open at the end; O5
        # accepted late, O4 not accepted in time
        "2026-11-02": figures(2, 1, 0, 2, 20.0, 50.0, 2),
    }


async def test_figures_per_team_type_and_location(app: Running, clock: FakeClock) -> None:
    await known_data(app, clock)
    span = {"from": "2026-11-01T00:00:00+08:00", "to": "2026-11-03T00:00:00+08:00"}
    teams = await stats(app, ADMIN, group_by="team", **span)
    assert [g["key"] for g in teams] == ["fire", "property"]  # the most created first
    assert by_key(teams) == {
        "fire": figures(3, 1, 0, 2, 25.0, 60.0, 2),
        "property": figures(2, 1, 1, 0, 20.0, 50.0, 1),
    }
    types = by_key(await stats(app, ADMIN, group_by="alarm_type", **span))
    assert types == {
        "消防通道堵塞": figures(2, 1, 0, 1, 25.0, 60.0, 1),
        "消防设施损坏": figures(1, 0, 0, 1, None, None, 1),
        "垃圾堆放": figures(2, 1, 1, 0, 20.0, 50.0, 1),
    }
    places = await stats(app, ADMIN, group_by="location", limit=1, **span)
    assert [(g["key"], g["created"]) for g in places] == [("A区北门", 3)]


async def test_the_range_bounds_what_is_counted(app: Running, clock: FakeClock) -> None:
    await known_data(app, clock)
    # 1 Nov only, in UTC terms up to 16:00Z: O5 (17:00Z) is outside
    teams = by_key(
        await stats(app, ADMIN, group_by="team", **{"from": "2026-11-01", "to": "2026-11-02"})
    )
    assert {key: g["created"] for key, g in teams.items()} == {"fire": 2, "property": 1}
    # teams with orders, but none in the range, are no groups (nor are orders of no team)
    before = {"from": "2026-10-30", "to": "2026-10-31"}
    for grouping in ("team", "alarm_type", "location"):
        assert await stats(app, ADMIN, group_by=grouping, **before) == []


async def test_each_caller_counts_only_what_they_may_see(app: Running, clock: FakeClock) -> None:
    await known_data(app, clock)
    span = {"from": "2026-11-01", "to": "2026-11-03"}
    seen = {
        user: {
            g["key"]: g["created"] for g in await stats(app, as_user(user), group_by="team", **span)
        }
        for user in ("lisi", "pm1", "alice", "mallory", "dispatcher1")
    }
    assert seen == {
        "lisi": {"fire": 3},
        "pm1": {"property": 2},
        "alice": {"property": 1},  # she reported O3 only
        "mallory": {},
        "dispatcher1": {"fire": 3, "property": 2},
    }
    days = await stats(app, as_user("alice"), group_by="day", **span)
    assert [g["created"] for g in days] == [1, 0]
    assert [g["open_backlog"] for g in days] == [0, 0]  # her only order was rejected


async def test_default_range_is_the_last_thirty_days(app: Running, clock: FakeClock) -> None:
    await known_data(app, clock)
    groups = await stats(app, ADMIN)
    assert len(groups) == 30
    assert groups[-1]["key"] == "2026-11-02"
    assert sum(g["created"] for g in groups) == 5


@pytest.mark.parametrize(
    ("params", "wanted"),
    [
        ({"from": "2026-11-03", "to": "2026-11-01"}, "before"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "366"),
        ({"from": "2026-11-01T00:00:00", "to": "2026-11-03"}, "time zone"),
        ({"from": "yesterday"}, "ISO 8601"),
    ],
)
async def test_bad_ranges_are_refused(app: Running, params: dict[str, str], wanted: str) -> None:
    answer = await app.client.get("/api/v1/stats", params=params, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert wanted in answer.json()["error"]["message"]


async def test_an_unknown_grouping_and_no_credentials_are_refused(app: Running) -> None:
    unknown = await app.client.get("/api/v1/stats", params={"group_by": "week"}, headers=ADMIN)
    assert unknown.status_code == 422
    anonymous = await app.client.get("/api/v1/stats")
    assert anonymous.status_code == 401


async def test_the_console_routes_are_in_the_openapi_document(app: Running) -> None:
    paths = (await app.client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/stats", "/api/v1/orders.csv", "/api/v1/events"):
        assert "get" in paths[path], path
    stats_params = {p["name"] for p in paths["/api/v1/stats"]["get"]["parameters"]}
    assert {"from", "to", "group_by"} <= stats_params
    csv_params = {p["name"] for p in paths["/api/v1/orders.csv"]["get"]["parameters"]}
    list_params = {p["name"] for p in paths["/api/v1/orders"]["get"]["parameters"]}
    assert list_params - {"cursor", "limit"} <= csv_params
