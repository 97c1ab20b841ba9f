"""The outbox's tables, on the orders schema's metadata (one schema, one migration chain).

``outbox``: one row per pending or dead message. A claim moves ``due_at`` to the end of the
lease, so "due" and "free to claim" are one indexed condition, and a worker killed mid-delivery
leaves a row that falls due again when its lease runs out. Delivered rows are deleted.
``notifications``: the in-app notifications, one per (message, recipient).
``wecom_users``: user ids known to be WeCom users (a message of theirs arrived by callback).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from snapreport.orders.tables import USER_ID_LENGTH, Base, Id, UTCDateTime
from snapreport.outbox.base import MAX_TOPIC_LENGTH


class OutboxRow(Base):
    """A message written with a change: pending until delivered (then deleted), or dead."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'dead')", name="status"),
        Index("ix_outbox_status_due_at", "status", "due_at"),
        # Ids are never reused (SQLite would hand a deleted row's id out again): the id and
        # attempt count fence a claim, and notifications are keyed by message id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(MAX_TOPIC_LENGTH))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NotificationRow(Base):
    """One in-app notification for one user; at most one per outbox message and user."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", name="uq_notifications_message_user"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_order_number_id", "order_number", "id"),  # an order's, in order
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(Id)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    type: Mapped[str] = mapped_column(String(MAX_TOPIC_LENGTH))
    order_number: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WeComUserRow(Base):
    """A user id that is a WeCom user: a message of theirs arrived through the callback."""

    __tablename__ = "wecom_users"

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
