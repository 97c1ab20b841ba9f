"""The orders schema: alarms and their photos, their work orders, each order's event log and
source messages, per-day counters.

Migrations in ``migrations/versions/`` create exactly these tables; a test compares the two.
Every timestamp is stored and returned timezone-aware, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments a column declared exactly "INTEGER PRIMARY KEY".
Id = BigInteger().with_variant(Integer(), "sqlite")

USER_ID_LENGTH = 128
MEDIA_KEY_LENGTH = 512
CHANNEL_LENGTH = 32
MESSAGE_ID_LENGTH = 128
TEAM_ID_LENGTH = 64
LOCATION_KEY_LENGTH = 200


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone itself)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# PostgreSQL only: trigram GIN indexes on lower(column) for the list's ``q``, built by
# migration 0012 when the pg_trgm extension is there. They are not in the metadata (they exist
# on one backend, and only with the extension); text search gives the same rows without them.
SEARCH_INDEXES: Final = (
    "ix_alarms_location_trgm",
    "ix_alarms_description_trgm",
    "ix_work_orders_number_trgm",
)

# What the figures read of an order besides its creation time (orders.stats).
FIGURES_COLUMNS: Final = (
    "status",
    "team",
    "alarm_type",
    "location",
    "accepted_at",
    "closed_at",
    "due_accept_at",
    "due_resolve_at",
)

# The (reporter, id) and (assignee, id) indexes carry these (PostgreSQL) for the lists of
# the orders a user is involved in.
INVOLVEMENT_COLUMNS: Final = ("team", "status")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the orders tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AlarmRow(Base):
    """An alarm: what was reported, where, by whom, from which source."""

    __tablename__ = "alarms"
    __table_args__ = (
        # the duplicate search: same type and folded location text; same type, near latitude
        Index("ix_alarms_type_location_key", "alarm_type", "location_key"),
        Index("ix_alarms_type_latitude", "alarm_type", "latitude"),
        # the list's type filter, newest first (keyset on the order's id)
        Index("ix_alarms_alarm_type_id", "alarm_type", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alarm_type: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    image_key: Mapped[str | None] = mapped_column(String(MEDIA_KEY_LENGTH))
    location: Mapped[str] = mapped_column(Text)
    reporter: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # the location folded for comparison (``orders.places.location_key``); None before 0010
    location_key: Mapped[str | None] = mapped_column(String(LOCATION_KEY_LENGTH))

    # photos after the first (``image_key``), in the order they were added
    photos: Mapped[list[AlarmPhotoRow]] = relationship(
        lazy="selectin", order_by="AlarmPhotoRow.position"
    )


class AlarmPhotoRow(Base):
    """A further photo of an alarm: the 2nd.. of a report, or one a merged report brought."""

    __tablename__ = "alarm_photos"
    __table_args__ = (
        UniqueConstraint("alarm_id", "position", name="uq_alarm_photos_alarm_position"),
        Index("ix_alarm_photos_image_key", "image_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(Id, ForeignKey("alarms.id"))
    position: Mapped[int] = mapped_column(Integer)
    image_key: Mapped[str] = mapped_column(String(MEDIA_KEY_LENGTH))
    added_by: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkOrderRow(Base):
    """The work order raised for an alarm: open → accepted → closed, or rejected."""

    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'accepted', 'closed', 'rejected')", name="status"),
        CheckConstraint("escalation BETWEEN 0 AND 2", name="escalation"),
        # Lists are newest first by id (the keyset cursor): each filter's index ends in id.
        Index("ix_work_orders_status_id", "status", "id"),
        # A user's orders: the team and status filters are checked in the index.
        Index(
            "ix_work_orders_reporter_id",
            "reporter",
            "id",
            postgresql_include=list(INVOLVEMENT_COLUMNS),
        ),
        Index(
            "ix_work_orders_assignee_id",
            "assignee",
            "id",
            postgresql_include=list(INVOLVEMENT_COLUMNS),
        ),
        Index("ix_work_orders_team_id", "team", "id"),
        # The figures read these four without the table (PostgreSQL: index-only scans).
        Index(
            "ix_work_orders_created_at_id",
            "created_at",
            "id",
            postgresql_include=list(FIGURES_COLUMNS),
        ),
        # (the second and third: one team's or type's orders of a range)
        *(
            Index(
                f"ix_work_orders_{key}_created_at",
                key,
                "created_at",
                postgresql_include=[c for c in FIGURES_COLUMNS if c != key],
            )
            for key in ("team", "alarm_type")
        ),
        Index(
            "ix_work_orders_closed_at_created_at",
            "closed_at",
            "created_at",
            postgresql_include=["status"],
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    alarm_id: Mapped[int] = mapped_column(Id, ForeignKey("alarms.id"), index=True)
    # copies of the alarm's (written at creation; an alarm never changes): the figures group
    # and filter by them without joining the alarms (migration 0015)
    alarm_type: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reporter: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    assignee: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    close_image_key: Mapped[str | None] = mapped_column(String(MEDIA_KEY_LENGTH))
    close_verified: Mapped[bool | None] = mapped_column(Boolean)
    close_note: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_by: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    team: Mapped[str | None] = mapped_column(String(TEAM_ID_LENGTH))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_accept_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_resolve_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalation: Mapped[int] = mapped_column(Integer, default=0)
    reject_reason: Mapped[str | None] = mapped_column(Text)

    # Always needed to build an ``Order``; async code cannot lazy-load it later.
    alarm: Mapped[AlarmRow] = relationship(lazy="joined", innerjoin=True)
    also_reported: Mapped[list[AlsoReportedRow]] = relationship(
        lazy="selectin", order_by="AlsoReportedRow.id"
    )


class AlsoReportedRow(Base):
    """A user whose duplicate report was merged into a work order (``also_reported_by``)."""

    __tablename__ = "order_also_reported"
    __table_args__ = (Index("ix_order_also_reported_user_id", "user_id", "order_id", unique=True),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("work_orders.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))


class OrderEventRow(Base):
    """One line of a work order's event log (created, closed, close_rejected, ...)."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("work_orders.id"))
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class OrderSourceRow(Base):
    """The message that created, closed or was merged into a work order: one row per
    (channel, user, message).

    A retried message finds its row (the unique constraint) and answers with that order
    instead of writing a second one.
    """

    __tablename__ = "order_sources"
    __table_args__ = (
        UniqueConstraint(
            "channel", "user_id", "message_id", name="uq_order_sources_channel_user_message"
        ),
        CheckConstraint("action IN ('create', 'close', 'merge')", name="action"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(CHANNEL_LENGTH))
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    message_id: Mapped[str] = mapped_column(String(MESSAGE_ID_LENGTH))
    action: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("work_orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class OrderCounterRow(Base):
    """The last sequence handed out on a UTC day; bumped in the transaction creating an order."""

    __tablename__ = "order_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class TeamTurnRow(Base):
    """How many orders a ``round_robin`` team was handed: the next goes to member (n mod size)."""

    __tablename__ = "team_turns"

    team: Mapped[str] = mapped_column(String(TEAM_ID_LENGTH), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
