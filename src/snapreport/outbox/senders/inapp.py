"""The handler of "order." messages: in-app notifications, and one WeCom job per recipient.

In ONE transaction it writes a notification per recipient (the unique (message, user) key
makes a repeat write nothing), enqueues a "wecom.notify" job for each recipient who is a WeCom
user, and completes the order message under its claim. So each recipient gets one
notification and at most one WeCom job, and a WeCom failure later retries that recipient alone.
The writes of ``also`` (the webhook fan-out) join the same transaction, so they happen once too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from snapreport.errors import Conflict, InvalidInput
from snapreport.orders.tables import USER_ID_LENGTH
from snapreport.outbox.base import OutboxJob, OutboxMessage
from snapreport.outbox.sqlalchemy import complete_in, enqueue
from snapreport.outbox.tables import NotificationRow, WeComUserRow

Clock = Callable[[], float]
# more writes of an order change, in the transaction that completes its job (webhook fan-out)
OrderExtra = Callable[[AsyncSession, OutboxJob, datetime], Awaitable[None]]
WECOM_TOPIC = "wecom.notify"
MAX_RECIPIENTS = 1000
MAX_TEXT_LENGTH = 4000


class ClaimLost(Conflict):
    """The job's lease ran out and another worker holds it now; nothing was written."""

    code = "outbox_claim_lost"


def recipients_of(payload: Mapping[str, Any]) -> list[str]:
    """The payload's recipients, each once, in order; refuses what no user id can be."""
    raw = payload.get("recipients")
    if not isinstance(raw, list) or len(raw) > MAX_RECIPIENTS:
        raise InvalidInput(f"recipients must be a list of at most {MAX_RECIPIENTS} user ids")
    seen: dict[str, None] = {}
    for user_id in raw:
        if not isinstance(user_id, str) or not 0 < len(user_id) <= USER_ID_LENGTH:
            raise InvalidInput(f"not a user id: {user_id!r}")
        seen.setdefault(user_id)
    return list(seen)


class OrderNotifier:
    """The "order." handler (see module doc)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        wecom: bool,
        staff_on_wecom: Iterable[str] = (),
        also: Sequence[OrderExtra] = (),
        clock: Clock = time.time,
    ) -> None:
        self._sessions = sessions
        self._also = tuple(also)
        self._wecom = wecom
        self._staff = frozenset(staff_on_wecom)
        self._clock = clock

    async def __call__(self, job: OutboxJob) -> None:
        payload = job.payload
        recipients = recipients_of(payload)
        order_number = str(payload.get("order_number", ""))[:32]
        text = str(payload.get("text", ""))[:MAX_TEXT_LENGTH]
        link = str(payload.get("link") or "")
        now = datetime.fromtimestamp(self._clock(), UTC)
        async with self._sessions() as session, session.begin():
            if not await complete_in(session, job):
                raise ClaimLost(f"outbox job {job.id} is held by another worker now")
            for extra in self._also:
                await extra(session, job, now)
            if not recipients:
                return
            insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
            await session.execute(
                insert(NotificationRow)
                .values(
                    [
                        {
                            "message_id": job.id,
                            "user_id": user_id,
                            "type": job.topic,
                            "order_number": order_number,
                            "text": text,
                            "created_at": now,
                        }
                        for user_id in recipients
                    ]
                )
                .on_conflict_do_nothing(
                    index_elements=[NotificationRow.message_id, NotificationRow.user_id]
                )
            )
            if not self._wecom:
                return
            on_wecom = self._staff | set(
                (
                    await session.scalars(
                        select(WeComUserRow.user_id).where(WeComUserRow.user_id.in_(recipients))
                    )
                ).all()
            )
            enqueue(
                session,
                *(
                    OutboxMessage(
                        WECOM_TOPIC,
                        {
                            "user_id": user_id,
                            "type": job.topic,
                            "order_number": order_number,
                            "text": text,
                            "link": link,
                        },
                    )
                    for user_id in recipients
                    if user_id in on_wecom
                ),
                now=now,
            )


def _dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name
