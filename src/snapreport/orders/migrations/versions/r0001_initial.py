"""Alarms, work orders, order events and the per-day order counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the id type as of this revision (SQLite needs "INTEGER PRIMARY KEY").
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alarm_type", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("image_key", sa.String(512), nullable=True),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("reporter", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("alarm_id", _ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reporter", sa.String(128), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("close_image_key", sa.String(512), nullable=True),
        sa.Column("close_verified", sa.Boolean(), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_work_orders"),
        sa.UniqueConstraint("number", name="uq_work_orders_number"),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name="fk_work_orders_alarm_id_alarms"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_work_orders_status"),
    )
    op.create_index("ix_work_orders_alarm_id", "work_orders", ["alarm_id"])
    op.create_index("ix_work_orders_status_created", "work_orders", ["status", "created_at"])
    op.create_index("ix_work_orders_reporter_created", "work_orders", ["reporter", "created_at"])
    op.create_index("ix_work_orders_assignee_created", "work_orders", ["assignee", "created_at"])
    op.create_table(
        "order_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("order_id", _ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_events"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name="fk_order_events_order_id_work_orders"
        ),
    )
    op.create_index("ix_order_events_order_id", "order_events", ["order_id", "id"])
    op.create_table(
        "order_counters",
        sa.Column("day", sa.String(8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_order_counters"),
    )


def downgrade() -> None:
    op.drop_table("order_counters")
    op.drop_index("ix_order_events_order_id", table_name="order_events")
    op.drop_table("order_events")
    op.drop_index("ix_work_orders_assignee_created", table_name="work_orders")
    op.drop_index("ix_work_orders_reporter_created", table_name="work_orders")
    op.drop_index("ix_work_orders_status_created", table_name="work_orders")
    op.drop_index("ix_work_orders_alarm_id", table_name="work_orders")
    op.drop_table("work_orders")
    op.drop_table("alarms")
