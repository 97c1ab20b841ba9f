"""Outbox endpoints: a user's in-app notifications (API token), dead letters (admin token).

Cursors are notification (or dead letter) ids as text: ``after`` takes the id of the last one
seen and answers only newer ones, so a page that polls keeps passing its last id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from snapreport.channels.http.auth import own_user_only, require_admin
from snapreport.channels.http.schemas import (
    USER_ID_PATTERN,
    DeadLetterOut,
    DeadLetterPage,
    DeadLetterRetried,
    ErrorOut,
    NotificationOut,
    NotificationPage,
)
from snapreport.channels.http.state import State
from snapreport.errors import InvalidRequest, NotFound

users_router = APIRouter(dependencies=[Depends(own_user_only)], tags=["users"])
admin_router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"])

UserId = Annotated[str, Path(pattern=USER_ID_PATTERN)]
Cursor = Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")]
MAX_PAGE = 200

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 422, 503)
}


def _after(cursor: str | None) -> int:
    value = int(cursor or 0)
    if value >= 2**63:
        raise InvalidRequest("the cursor is not one of ours")
    return value


@users_router.get(
    "/api/v1/users/{user_id}/notifications", response_model=NotificationPage, responses=_ERRORS
)
async def user_notifications(
    user_id: UserId,
    state: State,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> NotificationPage:
    """The user's in-app notifications newer than ``after``, oldest first."""
    found = await state.app.notifications.list(user_id, after=_after(after), limit=limit)
    return NotificationPage(
        notifications=[
            NotificationOut(
                id=str(n.id),
                type=n.type,
                order_number=n.order_number,
                text=n.text,
                created_at=n.created_at,
            )
            for n in found
        ],
        next_cursor=str(found[-1].id) if len(found) == limit else None,
    )


@admin_router.get("/api/v1/outbox/dead", response_model=DeadLetterPage, responses=_ERRORS)
async def dead_letters(
    state: State,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> DeadLetterPage:
    """Outbox messages that failed every attempt, oldest first."""
    found = await state.app.outbox.dead_letters(after=_after(after), limit=limit)
    return DeadLetterPage(
        dead_letters=[
            DeadLetterOut(
                id=str(d.id),
                topic=d.topic,
                payload=dict(d.payload),
                attempts=d.attempts,
                last_error=d.last_error,
                created_at=d.created_at,
                dead_at=d.dead_at,
            )
            for d in found
        ],
        next_cursor=str(found[-1].id) if len(found) == limit else None,
    )


@admin_router.post(
    "/api/v1/outbox/dead/{job_id}/retry", response_model=DeadLetterRetried, responses=_ERRORS
)
async def retry_dead_letter(
    job_id: Annotated[int, Path(ge=1, lt=2**63)], state: State
) -> DeadLetterRetried:
    """Deliver a dead letter again, with a fresh count of attempts."""
    if not await state.app.outbox.retry_dead(job_id):
        raise NotFound(f"no dead letter {job_id}")
    return DeadLetterRetried(id=str(job_id), retried=True)
