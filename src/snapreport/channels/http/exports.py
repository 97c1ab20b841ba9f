"""``GET /api/v1/orders.csv``: the list's filters as a CSV file, streamed in keyset batches.

Memory stays constant: one batch of ``MAX_PAGE`` orders at a time, each read in its own short
transaction (a long export never holds one open), written out before the next is read. The file
is UTF-8 with a byte order mark (spreadsheet programs then read Chinese text right), and cells
that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) get a leading ``'`` (OWASP, "CSV Injection"). The first batch is read before
the answer starts, so a refusal is still a JSON error; a database failure later ends the file
early (the client sees a truncated download).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from snapreport.channels.http.auth import CurrentCaller
from snapreport.channels.http.orders import Filters
from snapreport.channels.http.schemas import ErrorOut
from snapreport.channels.http.state import HttpState, State
from snapreport.dispatch.lifecycle import MAX_PAGE
from snapreport.dispatch.roles import Roles
from snapreport.logs import get_logger
from snapreport.orders.base import Order, OrderPage, OrderQuery

log = get_logger("snapreport.http")
router = APIRouter(tags=["console"])

COLUMNS: Final = (
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
)
BOM: Final = "\ufeff"
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 422, 503)
}


def safe_cell(value: str | None) -> str:
    """The cell as text, defused when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def csv_rows(orders: Iterable[Order]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for o in orders:
        writer.writerow(
            [
                safe_cell(value)
                for value in (
                    o.number,
                    o.status,
                    o.alarm_type,
                    o.team,
                    o.assignee,
                    o.reporter,
                    o.location,
                    o.description,
                    _when(o.created_at),
                    _when(o.accepted_at),
                    _when(o.closed_at),
                )
            ]
        )
    return buffer.getvalue()


@router.get(
    "/api/v1/orders.csv",
    response_class=StreamingResponse,
    responses={**_ERRORS, 200: {"content": {"text/csv": {}}, "description": "the CSV file"}},
)
async def export_orders(
    state: State,
    caller: CurrentCaller,
    query: Filters,
    batch: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
) -> StreamingResponse:
    """The orders of the list's filters that the caller may see, newest first, as CSV
    (columns: number, status, alarm_type, team, assignee, reporter, location, description,
    created_at, accepted_at, closed_at)."""
    dispatch = state.app.dispatch
    first = await dispatch.page(query, caller.roles, limit=batch)
    day = dispatch.now().astimezone(ZoneInfo(state.app.settings.timezone)).strftime("%Y%m%d")
    return StreamingResponse(
        _stream(state, caller.roles, query, first, batch),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="orders-{day}.csv"',
            "Cache-Control": "no-store",
        },
    )


async def _stream(
    state: HttpState, roles: Roles, query: OrderQuery, page: OrderPage, batch: int
) -> AsyncIterator[bytes]:
    yield (BOM + ",".join(COLUMNS) + "\r\n").encode()
    rows = 0
    while True:
        orders: Sequence[Order] = page.orders
        rows += len(orders)
        yield csv_rows(orders).encode()
        if page.next_cursor is None:
            break
        page = await state.app.dispatch.page(query, roles, limit=batch, cursor=page.next_cursor)
    log.info("orders_exported", user=roles.user_id, rows=rows)
