"""The handler of "order." messages: in-app notifications, and one WeCom job per recipient.

In ONE transaction it writes a notification per recipient (the unique (message, user) key
makes a repeat write nothing), enqueues a "wecom.notify" job for each recipient who is a WeCom
user, and completes the order message under its claim. So each recipient gets one
notification and at most one WeCom job, and a WeCom failure later retries that recipient alone.
The writes of ``also`` (the webhook fan-out) join the same transaction, so they happen once too.

The order messages the worker hands over at the same time share that transaction (group
commit, ``outbox.batching``): one transaction and a few statements for a round of changes, not
one transaction each. A message whose claim was lost writes nothing and its handler raises
``ClaimLost``, whatever the others in its transaction do.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from snapreport.errors import Conflict, InvalidInput
from snapreport.orders.tables import USER_ID_LENGTH
from snapreport.outbox.base import OutboxJob, OutboxMessage
from snapreport.outbox.batching import Batcher
from snapreport.outbox.sqlalchemy import complete_held_in, enqueue_many
from snapreport.outbox.tables import NotificationRow, WeComUserRow

Clock = Callable[[], float]
# more writes of an order change, in the transaction that completes its job (webhook fan-out)
OrderExtra = Callable[[AsyncSession, Sequence[OutboxJob], datetime], Awaitable[None]]
WECOM_TOPIC = "wecom.notify"
MAX_RECIPIENTS = 1000
MAX_TEXT_LENGTH = 4000
IN_CHUNK = 500  # ids per IN (...) list, within every driver's bound on parameters


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


@dataclass(frozen=True, slots=True)
class _Change:
    """An order message, checked, waiting for its transaction."""

    job: OutboxJob
    recipients: list[str]
    order_number: str
    text: str
    link: str


class OrderNotifier:
    """The "order." handler (see module doc)."""

    completes_own_jobs = True  # in the transaction of its writes (see ``Routes``)

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        wecom: bool,
        staff_on_wecom: Iterable[str] = (),
        also: Sequence[OrderExtra] = (),
        parallel: int = 1,
        clock: Clock = time.time,
    ) -> None:
        self._sessions = sessions
        self._also = tuple(also)
        self._wecom = wecom
        self._staff = frozenset(staff_on_wecom)
        self._clock = clock
        self._batcher: Batcher[_Change, None] = Batcher(self._write, parallel=parallel)

    async def __call__(self, job: OutboxJob) -> None:
        payload = job.payload
        await self._batcher.submit(
            _Change(
                job=job,
                recipients=recipients_of(payload),
                order_number=str(payload.get("order_number", ""))[:32],
                text=str(payload.get("text", ""))[:MAX_TEXT_LENGTH],
                link=str(payload.get("link") or ""),
            )
        )

    async def _write(self, changes: Sequence[_Change]) -> list[Exception | None]:
        """One transaction for ``changes``: completions, ``also``, notifications, WeCom jobs."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        async with self._sessions() as session, session.begin():
            held = await complete_held_in(session, [c.job for c in changes])
            live = [c for c in changes if c.job.id in held]
            for extra in self._also:
                await extra(session, [c.job for c in live], now)
            rows = [
                {
                    "message_id": c.job.id,
                    "user_id": user_id,
                    "type": c.job.topic,
                    "order_number": c.order_number,
                    "text": c.text,
                    "created_at": now,
                }
                for c in live
                for user_id in c.recipients
            ]
            if rows:
                insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
                # RETURNING makes it one statement a page (SQLAlchemy's "insertmanyvalues")
                await session.execute(
                    insert(cast(Table, NotificationRow.__table__))
                    .on_conflict_do_nothing(
                        index_elements=[NotificationRow.message_id, NotificationRow.user_id]
                    )
                    .returning(NotificationRow.id),
                    rows,
                )
            if self._wecom and rows:
                on_wecom = self._staff | await _wecom_users(
                    session, {user_id for c in live for user_id in c.recipients}
                )
                await enqueue_many(
                    session,
                    [
                        OutboxMessage(
                            WECOM_TOPIC,
                            {
                                "user_id": user_id,
                                "type": c.job.topic,
                                "order_number": c.order_number,
                                "text": c.text,
                                "link": c.link,
                            },
                        )
                        for c in live
                        for user_id in c.recipients
                        if user_id in on_wecom
                    ],
                    now=now,
                )
        return [
            None
            if c.job.id in held
            else ClaimLost(f"outbox job {c.job.id} is held by another worker now")
            for c in changes
        ]


async def _wecom_users(session: AsyncSession, user_ids: set[str]) -> set[str]:
    """Which of ``user_ids`` are known WeCom users (queried in bounded chunks)."""
    found: set[str] = set()
    ordered = sorted(user_ids)
    for start in range(0, len(ordered), IN_CHUNK):
        chunk = ordered[start : start + IN_CHUNK]
        found.update(
            (
                await session.scalars(
                    select(WeComUserRow.user_id).where(WeComUserRow.user_id.in_(chunk))
                )
            ).all()
        )
    return found


def _dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name
