"""``GET /api/v1/orders.csv`` on SQLite and PostgreSQL: the BOM and columns, every matching
row across keyset batches newest first, the list's filters and visibility, formula cells
defused, a dated file name, and refusals as JSON errors."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapreport.channels.http.exports import safe_cell
from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS
from tests.integration.console_kit import ADMIN, act, as_user, console_app, file_order
from tests.integration.http_kit import Running

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

# 23:30 UTC on 30 Nov is 07:30 on 1 Dec in Shanghai: the file is named after the local day
T0 = datetime(2026, 11, 30, 23, 30, tzinfo=UTC).timestamp()
COLUMNS = [
    "number",
    "status",
    "alarm_type",
    "team",
    "assignee",
    "reporter",
    "location",
    "description",
    "created_at",
    "accepted_at",
    "closed_at",
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def app(orders_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Running]:
    async with console_app(tmp_path, orders_url, clock) as r:
        yield r


async def export(
    app: Running, headers: dict[str, str], **params: str | int
) -> tuple[list[dict[str, str]], bytes, dict[str, str]]:
    async with app.client.stream(
        "GET", "/api/v1/orders.csv", params=params, headers=headers
    ) as answer:
        assert answer.status_code == 200
        body = await answer.aread()
        response_headers = dict(answer.headers)
    text = body.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == COLUMNS
    return list(reader), body, response_headers


async def test_every_row_in_batches_newest_first(app: Running, clock: FakeClock) -> None:
    numbers = []
    for i in range(5):
        numbers.append((await file_order(app, description=f"第{i}处"))["number"])
        clock.advance(60)
    await act(app, "lisi", numbers[0], "accept")
    rows, body, headers = await export(app, ADMIN, batch=2)
    assert body.startswith(b"\xef\xbb\xbf")
    assert headers["content-type"].startswith("text/csv")
    assert headers["content-disposition"] == 'attachment; filename="orders-20261201.csv"'
    assert [r["number"] for r in rows] == list(reversed(numbers))
    first = rows[-1]
    assert (first["status"], first["team"], first["assignee"]) == ("accepted", "fire", "lisi")
    assert first["description"] == "第0处"
    assert datetime.fromisoformat(first["accepted_at"]) > datetime.fromisoformat(
        first["created_at"]
    )
    assert first["closed_at"] == ""


async def test_filters_and_visibility_are_the_lists(app: Running) -> None:
    fire = await file_order(app)
    mine = await file_order(app, "B区车库", "垃圾堆放", reporter="alice")
    await act(app, "lisi", fire["number"], "accept")
    for user, wanted in (
        ("lisi", [fire["number"]]),
        ("alice", [mine["number"]]),
        ("mallory", []),
        ("dispatcher1", [mine["number"], fire["number"]]),
    ):
        rows, _, _ = await export(app, as_user(user))
        assert [r["number"] for r in rows] == wanted, user
    accepted, _, _ = await export(app, ADMIN, status="accepted")
    assert [r["number"] for r in accepted] == [fire["number"]]
    found, _, _ = await export(app, ADMIN, q="车库")
    assert [r["number"] for r in found] == [mine["number"]]


async def test_formula_cells_are_defused(app: Running) -> None:
    hostile = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]
    for text in hostile:
        await file_order(app, location="A区北门", description=text)
    rows, _, _ = await export(app, ADMIN)
    assert sorted(r["description"] for r in rows) == sorted("'" + t for t in hostile)
    assert safe_cell("普通 text = fine") == "普通 text = fine"
    assert safe_cell(None) == ""
    # the API trims what it stores; cells that still start with a tab or CR are defused too
    assert safe_cell("\tTAB") == "'\tTAB"
    assert safe_cell("\r=1") == "'\r=1"


async def test_refusals_are_json_errors(app: Running) -> None:
    anonymous = await app.client.get("/api/v1/orders.csv")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    naive = await app.client.get(
        "/api/v1/orders.csv", params={"from": "2026-11-01T00:00:00"}, headers=ADMIN
    )
    assert naive.status_code == 400
    assert "time zone" in naive.json()["error"]["message"]
    too_big = await app.client.get("/api/v1/orders.csv", params={"batch": 5000}, headers=ADMIN)
    assert too_big.status_code == 422
