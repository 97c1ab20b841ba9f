"""The webhook tables, on the orders schema's metadata (one schema, one migration chain).

``webhook_endpoints``: one row per subscription, with its signing secret (and the previous one
while a rotation's overlap lasts), ``failing_since`` (the first failure since the last success)
and ``disabled_at``. ``webhook_messages``: one row per (order change, endpoint), the exact body
every attempt sends. ``webhook_attempts``: the delivery log, one row per attempt.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from snapreport.orders.tables import Base, Id, UTCDateTime
from snapreport.outbox.base import MAX_TOPIC_LENGTH

ENDPOINT_ID_LENGTH = 32
MESSAGE_ID_LENGTH = 40
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
SECRET_LENGTH = 100


class WebhookEndpointRow(Base):
    """A subscription: where to send which order events, and the secret that signs them."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(ENDPOINT_ID_LENGTH), primary_key=True)
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    events: Mapped[str] = mapped_column(Text)  # a JSON list of event types, or ["*"]
    description: Mapped[str] = mapped_column(String(MAX_DESCRIPTION_LENGTH))
    secret: Mapped[str] = mapped_column(String(SECRET_LENGTH))
    previous_secret: Mapped[str | None] = mapped_column(String(SECRET_LENGTH))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookMessageRow(Base):
    """One order event for one endpoint: its webhook-id and the body every attempt sends."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_endpoint_id", "endpoint_id"),
        Index("ix_webhook_messages_created_at", "created_at"),  # clean-up by age
    )

    id: Mapped[str] = mapped_column(String(MESSAGE_ID_LENGTH), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(ENDPOINT_ID_LENGTH), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(MAX_TOPIC_LENGTH))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookAttemptRow(Base):
    """One delivery attempt: its outcome, and when the next one is due (if any)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_attempts_message_id", "message_id"),  # redelivery, clean-up
        Index("ix_webhook_attempts_at", "at"),  # clean-up by age
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(ENDPOINT_ID_LENGTH), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    message_id: Mapped[str] = mapped_column(
        String(MESSAGE_ID_LENGTH), ForeignKey("webhook_messages.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(MAX_TOPIC_LENGTH))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
