"""``SqlNotifications``: reading in-app notifications, and remembering who is on WeCom.

The notifications themselves are written by the order handler (``senders/inapp.py``), in the
transaction that completes the outbox job announcing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from snapreport.orders.database import writer
from snapreport.outbox.base import Notification, Recipient
from snapreport.outbox.sqlalchemy import store_guard
from snapreport.outbox.tables import NotificationRow, WeComUserRow

Clock = Callable[[], float]
KNOWN_CACHE_LIMIT = 100_000


class SqlNotifications:
    """The ``NotificationStore`` port on the orders database."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer(engine), expire_on_commit=False)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        # Users this process has recorded: one write per user and process, not per message.
        self._known: set[str] = set()

    async def list(self, user_id: str, *, after: int, limit: int) -> Sequence[Notification]:
        query = (
            select(NotificationRow)
            .where(NotificationRow.user_id == user_id, NotificationRow.id > after)
            .order_by(NotificationRow.id)
            .limit(limit)
        )
        async with store_guard("listing notifications"), self._reads() as session:
            rows = (await session.scalars(query)).all()
        return [
            Notification(
                id=row.id,
                type=row.type,
                order_number=row.order_number,
                text=row.text,
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def of_order(self, order_number: str, *, limit: int) -> Sequence[Recipient]:
        query = (
            select(NotificationRow)
            .where(NotificationRow.order_number == order_number)
            .order_by(NotificationRow.id)
            .limit(limit)
        )
        async with store_guard("listing an order's notifications"), self._reads() as session:
            rows = (await session.scalars(query)).all()
        return [
            Recipient(user_id=row.user_id, type=row.type, text=row.text, created_at=row.created_at)
            for row in rows
        ]

    async def mark_wecom_user(self, user_id: str) -> None:
        if user_id in self._known:
            return
        statement = (
            self._insert(WeComUserRow)
            .values(user_id=user_id, first_seen_at=datetime.fromtimestamp(self._clock(), UTC))
            .on_conflict_do_nothing(index_elements=[WeComUserRow.user_id])
        )
        async with (
            store_guard("recording a WeCom user"),
            self._writes() as session,
            session.begin(),
        ):
            await session.execute(statement)
        if len(self._known) >= KNOWN_CACHE_LIMIT:
            self._known.clear()
        self._known.add(user_id)
