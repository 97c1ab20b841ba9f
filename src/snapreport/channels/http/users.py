"""User endpoints for the web page (API token, or the user's own browser session): a user's
orders, their photos, their session.

A user may fetch only the photos of their own orders (reported by or assigned to them) and
those their live session refers to; any other key answers 404, as if it did not exist. Photos
come without their metadata unless the admin token is used (see ``photos.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from snapreport.channels.http.auth import own_user_only
from snapreport.channels.http.photos import photo_response
from snapreport.channels.http.render import order_out, session_media_keys, user_media_url
from snapreport.channels.http.schemas import USER_ID_PATTERN, ErrorOut, OrderList, UserSession
from snapreport.channels.http.state import HttpState, State
from snapreport.errors import MediaNotFound
from snapreport.media.validation import check_key

UserId = Annotated[str, Path(pattern=USER_ID_PATTERN)]


router = APIRouter(dependencies=[Depends(own_user_only)], tags=["users"])
MediaKey = Annotated[str, Path(min_length=1, max_length=100)]
MAX_ORDERS = 1000

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 422, 503)
}


@router.get("/api/v1/users/{user_id}/orders", response_model=OrderList, responses=_ERRORS)
async def user_orders(user_id: UserId, state: State) -> OrderList:
    """The user's orders (reported by or assigned to them), newest first."""
    orders = await state.app.orders.list(user_id=user_id, limit=MAX_ORDERS)
    return OrderList(
        orders=[
            order_out(o, image_url=user_media_url(user_id, o.image_key) if o.image_key else None)
            for o in orders
        ]
    )


@router.get(
    "/api/v1/users/{user_id}/media/{key:path}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **_ERRORS},
)
async def user_media(user_id: UserId, key: MediaKey, request: Request, state: State) -> Response:
    """A photo of one of the user's orders or of their live session, without its metadata
    (EXIF, XMP) unless the admin token is used."""
    check_key(key)
    if not await _may_see(state, user_id, key):
        raise MediaNotFound(f"no photo {key!r} for user {user_id!r}")
    return await photo_response(request, state.app.media, key)


@router.get(
    "/api/v1/users/{user_id}/session",
    response_model=UserSession,
    response_model_exclude_defaults=True,  # "language" only once the user has one
    responses=_ERRORS,
)
async def user_session(user_id: UserId, state: State) -> UserSession:
    """The user's dialogue state, the seconds until their session expires (idle if none) and,
    once chosen, their reply language."""
    engine = state.app.engine
    info = await engine.peek(user_id)
    if info is None:  # no session record: the language the user chose, if they did
        chosen = await state.app.languages.recall(user_id)
        return UserSession(state="idle", expires_in=None, language=chosen or "")
    language = info.session.language  # kept across an expiry
    if info.expired:
        return UserSession(state="idle", expires_in=None, language=language)
    return UserSession(
        state=info.session.state,
        expires_in=max(0.0, info.expires_at - engine.now()),
        language=language,
    )


async def _may_see(state: HttpState, user_id: str, key: str) -> bool:
    info = await state.app.engine.peek(user_id)
    if info is not None and not info.expired and key in session_media_keys(info.session):
        return True
    return await state.app.orders.has_image(user_id, key)
