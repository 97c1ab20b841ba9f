"""The Staff API on work orders: list (filters, keyset pages), show, and change them.

Who sees what and who may do what is decided by ``dispatch.roles``, through ``Dispatch``: an
order the caller may not see answers 404, one they see but may not act on 403 (its code names
the rule), a change its status does not allow 409. Every change goes through the same lifecycle
as the chat commands, with the same notifications. A change's body is read only once the caller
is known and may see the order (``SeenOrder``), under a cap of its own: a close's (it may carry
a photo) is the photo's, the others' ``MAX_TEXT_BODY_BYTES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from snapreport.channels.http.auth import CurrentCaller
from snapreport.channels.http.body import json_body, photo_body_limit, read_json
from snapreport.channels.http.images import decode_base64
from snapreport.channels.http.render import order_detail, order_out
from snapreport.channels.http.schemas import (
    USER_ID_PATTERN,
    CloseIn,
    CommentIn,
    ErrorOut,
    OrderDetail,
    OrderOut,
    OrderPageOut,
    RejectIn,
    ReopenIn,
    TransferIn,
)
from snapreport.channels.http.state import State
from snapreport.dispatch.lifecycle import MAX_PAGE, Dispatch
from snapreport.dispatch.roles import Roles
from snapreport.errors import InvalidInput
from snapreport.orders.base import Order, OrderQuery, OrderStatus

router = APIRouter(tags=["orders"])
Route = TypeVar("Route", bound=Callable[..., Any])

OrderNumber = Annotated[str, Path(min_length=1, max_length=64)]
UserFilter = Annotated[str | None, Query(pattern=USER_ID_PATTERN)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422, 503)
}
# a reason, a note or a comment of at most 2,000 characters, escaped as JSON at its longest
MAX_TEXT_BODY_BYTES: Final = 16 * 1024


async def order_query(
    state: State,
    status: Annotated[list[OrderStatus] | None, Query(max_length=4)] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    assignee: UserFilter = None,
    reporter: UserFilter = None,
    user_id: UserFilter = None,
    alarm_type: Annotated[str | None, Query(max_length=64)] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    overdue: bool = False,
) -> OrderQuery:
    """The filters of the list and of its CSV export. ``status`` may be repeated (any of
    them: the console's "open and accepted")."""
    for name, bound in (("from", created_from), ("to", created_to)):
        if bound is not None and bound.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. 2026-11-29T00:00:00+08:00)")
    return OrderQuery(
        statuses=tuple(dict.fromkeys(status or ())),
        team=team,
        assignee=assignee,
        reporter=reporter,
        alarm_type=alarm_type,
        created_from=created_from,
        created_to=created_to,
        text=q,
        overdue_at=state.app.dispatch.now() if overdue else None,
        involving=user_id,
    )


Filters = Annotated[OrderQuery, Depends(order_query)]


@router.get("/api/v1/orders", response_model=OrderPageOut, responses=_ERRORS)
async def list_orders(
    state: State,
    caller: CurrentCaller,
    query: Filters,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> OrderPageOut:
    """Orders the caller may see, newest first. ``from``/``to`` bound ``created_at`` (ISO
    8601, ``to`` exclusive); ``q`` searches location, description and number; ``overdue``
    keeps orders past a deadline; ``user_id`` matches reporter, assignee or merged reporter."""
    page = await state.app.dispatch.page(query, caller.roles, limit=limit, cursor=cursor)
    return OrderPageOut(orders=[order_out(o) for o in page.orders], next_cursor=page.next_cursor)


@dataclass(frozen=True, slots=True)
class Seen:
    """An order the caller may see, the lifecycle that changes it and the caller's roles."""

    order: Order
    dispatch: Dispatch
    roles: Roles


async def seen_order(number: OrderNumber, state: State, caller: CurrentCaller) -> Seen:
    """The order at ``number`` if the caller may see it; else 404 before any action runs."""
    dispatch = state.app.dispatch
    return Seen(await dispatch.visible(number, caller.roles), dispatch, caller.roles)


SeenOrder = Annotated[Seen, Depends(seen_order)]


def action(name: str, body: type[BaseModel]) -> Callable[[Route], Route]:
    """The route of the change ``name`` of an order, whose JSON body is a ``body`` (read by
    the route with ``read_json``) and whose answer is the changed order."""
    path = f"/api/v1/orders/{{number}}/{name}"
    return router.post(path, response_model=OrderOut, **json_body(body, _ERRORS))


@router.get("/api/v1/orders/{number}", response_model=OrderDetail, responses=_ERRORS)
async def show_order(seen: SeenOrder) -> OrderDetail:
    """One order with its event log."""
    return order_detail(seen.order, await seen.dispatch.events(seen.order.number))


@router.post("/api/v1/orders/{number}/accept", response_model=OrderOut, responses=_ERRORS)
async def accept_order(seen: SeenOrder) -> OrderOut:
    """Take the order: ``accepted``, assignee = the caller. A second claimant gets 409
    ``order_already_accepted`` naming who has it."""
    return order_out(await seen.dispatch.accept(seen.order.number, seen.roles))


@action("transfer", TransferIn)
async def transfer_order(seen: SeenOrder, request: Request) -> OrderOut:
    """Hand the order to a team or a person (it waits for their acceptance)."""
    body = await read_json(request, TransferIn, limit=MAX_TEXT_BODY_BYTES)
    return order_out(await seen.dispatch.transfer(seen.order.number, seen.roles, body.to))


@action("reject", RejectIn)
async def reject_order(seen: SeenOrder, request: Request) -> OrderOut:
    """Not a problem, a duplicate, out of scope: ``rejected`` with the reason."""
    body = await read_json(request, RejectIn, limit=MAX_TEXT_BODY_BYTES)
    return order_out(await seen.dispatch.reject(seen.order.number, seen.roles, body.reason))


@action("close", CloseIn)
async def close_order(seen: SeenOrder, request: Request, state: State) -> OrderOut:
    """Close it, with a note and maybe a photo of the fixed site (recorded as unverified)."""
    number = seen.order.number
    await seen.dispatch.check_can_close(number, seen.roles)
    limit = photo_body_limit(state.app.settings.media.max_bytes)
    body = await read_json(request, CloseIn, limit=limit)
    image_key: str | None = None
    if body.image is not None:
        data = decode_base64(body.image.data, state.app.settings.media.max_bytes)
        stored = await state.app.media.put_image(data, declared_mime=body.image.mime)
        image_key = stored.key
    closed = await seen.dispatch.close(
        number,
        by=seen.roles,
        close_image_key=image_key,
        verified=None,
        note=body.note.strip(),
        forced=False,
    )
    return order_out(closed)


@action("reopen", ReopenIn)
async def reopen_order(seen: SeenOrder, request: Request) -> OrderOut:
    """Not fixed after all: ``open`` again (the reporter within the reopen window, or staff)."""
    body = await read_json(request, ReopenIn, limit=MAX_TEXT_BODY_BYTES)
    return order_out(await seen.dispatch.reopen(seen.order.number, seen.roles, body.reason))


@router.post(
    "/api/v1/orders/{number}/comments",
    response_model=OrderDetail,
    status_code=201,
    **json_body(CommentIn, _ERRORS),
)
async def comment_order(seen: SeenOrder, request: Request) -> OrderDetail:
    """A comment in the order's log; answers the order with its log."""
    body = await read_json(request, CommentIn, limit=MAX_TEXT_BODY_BYTES)
    order = await seen.dispatch.comment(seen.order.number, seen.roles, body.text)
    return order_detail(order, await seen.dispatch.events(order.number))
