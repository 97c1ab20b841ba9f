"""Domain values to response bodies."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from snapreport.channels.http.schemas import (
    HistoryMessageOut,
    OrderDetail,
    OrderEventOut,
    OrderOut,
    SessionDetail,
    SessionSummary,
)
from snapreport.dispatch.views import order_fields
from snapreport.orders.base import Order, OrderEvent
from snapreport.session.engine import SessionInfo
from snapreport.session.model import Session


def order_out(order: Order, *, image_url: str | None = None) -> OrderOut:
    # the same fields as the outbox payloads (dispatch.views), so both shapes never drift
    return OrderOut(**order_fields(order), image_url=image_url)


def user_media_url(user_id: str, key: str) -> str:
    return f"/api/v1/users/{quote(user_id, safe='')}/media/{key}"


def order_detail(order: Order, events: Sequence[OrderEvent]) -> OrderDetail:
    return OrderDetail(
        **order_out(order).model_dump(),
        events=[
            OrderEventOut(kind=e.kind, actor=e.actor, detail=e.detail, at=e.at) for e in events
        ],
    )


def session_summary(session: Session, *, ttl_seconds: float, now: float) -> SessionSummary:
    return SessionSummary(
        user_id=session.user_id,
        state=session.state,
        turns=len(session.history),
        updated_at=session.updated_at,
        expires_in=max(0.0, session.expires_at(ttl_seconds) - now),
    )


def session_detail(info: SessionInfo, *, now: float) -> SessionDetail:
    session = info.session
    slots = {
        name: getattr(session.slots, name)
        for name in session.slots.__struct_fields__
        if getattr(session.slots, name) not in ("", None, 0, [])
    }
    return SessionDetail(
        user_id=session.user_id,
        state=session.state,
        slots=slots,
        history=[
            HistoryMessageOut(role=m.role, text=m.text, images=[image.key for image in m.images])
            for m in session.history.messages()
        ],
        version=session.version,
        updated_at=session.updated_at,
        expires_in=max(0.0, info.expires_at - now),
        expired=info.expired,
        language=session.language,
    )


def session_media_keys(session: Session) -> set[str]:
    """Every media key a session refers to: its pending photos and those in its history."""
    keys = {session.slots.image_key, session.slots.close_image_key, *session.slots.more_images}
    for message in session.history.messages():
        keys.update(image.key for image in message.images)
    keys.discard("")
    return keys
