"""The staff console: the ``/console`` page (and its deep links) and what it shows of an order
beyond the Staff API's answer.

- ``GET /console``, ``GET /console/{path}``: the page (``web/static/console/index.html``); the
  page itself asks ``/api/v1/me`` who is signed in and offers sign-in when nobody is.
- ``GET /api/v1/orders/{number}/actions``: what the caller may do to the order now, by the
  lifecycle table and ``dispatch.roles`` (the one place); the page offers only those, and the
  server still decides when one is sent.
- ``GET /api/v1/orders/{number}/notifications``: the notifications sent about the order.
- ``GET /api/v1/orders/{number}/photos/{which}``: its photo before (``report``) or after
  (``close``), to anyone who may see the order (without metadata unless the admin token is used,
  as every photo answer: ``photos.py``); ``?index=N`` picks one of several report photos
  (``image_keys``, 0-based; without it, the first).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from snapreport.channels.http.auth import CurrentCaller
from snapreport.channels.http.photos import photo_response
from snapreport.channels.http.schemas import ErrorOut
from snapreport.channels.http.state import State
from snapreport.dispatch import roles as permissions
from snapreport.dispatch.lifecycle import TRANSITIONS, Dispatch
from snapreport.dispatch.roles import Action, Roles
from snapreport.errors import MediaNotFound, NotPermitted
from snapreport.orders.base import Order

router = APIRouter(tags=["console"])

OrderNumber = Annotated[str, Path(min_length=1, max_length=64)]
MAX_NOTIFICATIONS: Final = 200
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 422, 503)
}


class ActionsOut(BaseModel):
    """What the caller may do to the order now (the server checks again when they do it)."""

    actions: list[Action]


class SentNotificationOut(BaseModel):
    user_id: str
    type: str
    text: str
    created_at: datetime


class SentNotificationsOut(BaseModel):
    """Notifications sent about an order, oldest first (the first ``MAX_NOTIFICATIONS``)."""

    notifications: list[SentNotificationOut]


def allowed_actions(dispatch: Dispatch, roles: Roles, order: Order) -> list[Action]:
    """The actions of the lifecycle table that ``roles`` may do to ``order`` in its status."""
    allowed: list[Action] = []
    for transition in TRANSITIONS:
        if order.status not in transition.sources:
            continue
        try:
            permissions.check(
                transition.action,
                roles,
                order,
                now=dispatch.now(),
                reopen_window=dispatch.reopen_window,
            )
        except NotPermitted:
            continue
        allowed.append(transition.action)
    return allowed


@router.get("/api/v1/orders/{number}/actions", response_model=ActionsOut, responses=_ERRORS)
async def order_actions(number: OrderNumber, state: State, caller: CurrentCaller) -> ActionsOut:
    """What the caller may do to the order now: the console offers only these."""
    dispatch = state.app.dispatch
    order = await dispatch.visible(number, caller.roles)
    return ActionsOut(actions=allowed_actions(dispatch, caller.roles, order))


@router.get(
    "/api/v1/orders/{number}/notifications",
    response_model=SentNotificationsOut,
    responses=_ERRORS,
)
async def order_notifications(
    number: OrderNumber, state: State, caller: CurrentCaller
) -> SentNotificationsOut:
    """The in-app notifications sent about the order, to whom and when, oldest first."""
    order = await state.app.dispatch.visible(number, caller.roles)
    sent = await state.app.notifications.of_order(order.number, limit=MAX_NOTIFICATIONS)
    return SentNotificationsOut(
        notifications=[
            SentNotificationOut(
                user_id=n.user_id, type=n.type, text=n.text, created_at=n.created_at
            )
            for n in sent
        ]
    )


@router.get(
    "/api/v1/orders/{number}/photos/{which}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **_ERRORS},
)
async def order_photo(
    number: OrderNumber,
    which: Literal["report", "close"],
    request: Request,
    state: State,
    caller: CurrentCaller,
    index: Annotated[
        int | None,
        Query(ge=0, description="which of the photos, 0-based (a report may have several)"),
    ] = None,
) -> Response:
    """The order's photo: ``report`` (before) or ``close`` (after); ``index`` picks one of the
    report's photos (``image_keys``), the first without it."""
    order = await state.app.dispatch.visible(number, caller.roles)
    keys = order.image_keys if which == "report" else tuple(filter(None, [order.close_image_key]))
    if not keys:
        raise MediaNotFound(f"{order.number} has no {which} photo")
    if index is not None and index >= len(keys):
        raise MediaNotFound(
            f"{order.number} has {len(keys)} {which} photo(s): index {index} is out of range "
            f"(0-{len(keys) - 1})"
        )
    return await photo_response(request, state.app.media, keys[index or 0])


def serve_console(app: FastAPI, page_file: FilePath) -> None:
    """``/console`` and its deep links (``/console/orders/WO-...``): one page, read here."""
    page = page_file.read_text(encoding="utf-8")

    async def console_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    app.add_api_route("/console", console_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/console/{rest:path}", console_page, methods=["GET"], include_in_schema=False
    )
