"""Admin endpoints (admin token): sessions, creating orders, media. Listing and changing orders
is the Staff API (``orders.py``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from snapreport.channels.http.auth import require_admin
from snapreport.channels.http.body import json_body, read_json
from snapreport.channels.http.images import decode_base64
from snapreport.channels.http.photos import photo_response
from snapreport.channels.http.render import order_out, session_detail, session_summary
from snapreport.channels.http.schemas import (
    USER_ID_PATTERN,
    ErrorOut,
    NewOrderIn,
    OrderOut,
    SessionCleared,
    SessionDetail,
    SessionPageOut,
    SignedOut,
)
from snapreport.channels.http.state import State
from snapreport.errors import SessionNotFound
from snapreport.orders.base import NewReport

router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"])

UserId = Annotated[str, Path(pattern=USER_ID_PATTERN)]
OrderNumber = Annotated[str, Path(min_length=1, max_length=64)]
MediaKey = Annotated[str, Path(min_length=1, max_length=100)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 422, 503)
}


@router.get("/api/v1/sessions", response_model=SessionPageOut, responses=_ERRORS)
async def list_sessions(
    state: State,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> SessionPageOut:
    """The number of active sessions and a page of them, ordered by user id."""
    engine = state.app.engine
    active, page = await asyncio.gather(engine.active_count(), engine.list_active(cursor, limit))
    now = engine.now()
    ttl = engine.config.ttl_seconds
    return SessionPageOut(
        active=active,
        sessions=[session_summary(s, ttl_seconds=ttl, now=now) for s in page.sessions],
        next_cursor=page.next_cursor,
    )


@router.get("/api/v1/sessions/{user_id}", response_model=SessionDetail, responses=_ERRORS)
async def show_session(user_id: UserId, state: State) -> SessionDetail:
    """A user's session as stored (state, pending slots, history), without refreshing it."""
    engine = state.app.engine
    info = await engine.peek(user_id)
    if info is None:
        raise SessionNotFound(f"no session for user {user_id!r}")
    return session_detail(info, now=engine.now())


@router.delete("/api/v1/sessions/{user_id}", response_model=SessionCleared, responses=_ERRORS)
async def clear_session(user_id: UserId, state: State) -> SessionCleared:
    """Delete a user's session: state, slots and history."""
    if not await state.app.engine.clear(user_id):
        raise SessionNotFound(f"no session for user {user_id!r}")
    return SessionCleared(user_id=user_id, cleared=True)


@router.delete("/api/v1/sign-ins/{user_id}", response_model=SignedOut, responses=_ERRORS)
async def sign_out_everywhere(user_id: UserId, state: State) -> SignedOut:
    """End every browser session of a user, on every worker (the person must sign in again)."""
    await state.app.identity.sessions.revoke_user(user_id)
    return SignedOut(user_id=user_id, signed_out=True)


@router.post(
    "/api/v1/orders",
    response_model=OrderOut,
    status_code=201,
    **json_body(NewOrderIn, _ERRORS),
)
async def create_order(request: Request, state: State) -> OrderOut:
    """An order raised by an external alarm system, routed like a chat report; its photo is
    validated and stored first.

    The body (``NewOrderIn``) is read here, after the admin token was checked, and under the
    admin body cap (``SNAPREPORT_HTTP__ADMIN_MAX_BODY_BYTES``)."""
    limit = state.app.settings.http.admin_max_body_bytes
    body = await read_json(request, NewOrderIn, limit=limit)
    image_key: str | None = None
    if body.image is not None:
        media = state.app.media
        max_bytes = state.app.settings.media.max_bytes
        data = decode_base64(body.image.data, max_bytes)
        image_key = (await media.put_image(data, declared_mime=body.image.mime)).key
    order = await state.app.dispatch.create(
        NewReport(
            reporter=body.reporter,
            alarm_type=body.alarm_type.strip(),
            location=body.location.strip(),
            description=body.description.strip(),
            image_key=image_key,
            assignee=body.assignee,
            source="external",
            latitude=body.latitude,
            longitude=body.longitude,
        )
    )
    return order_out(order)


@router.get(
    "/api/v1/media/{key:path}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **_ERRORS},
)
async def get_media(key: MediaKey, request: Request, state: State) -> Response:
    """The bytes of a stored image as stored with the admin token; without its metadata (EXIF,
    XMP) to a request that came in with the API token (no admin token set)."""
    return await photo_response(request, state.app.media, key)
