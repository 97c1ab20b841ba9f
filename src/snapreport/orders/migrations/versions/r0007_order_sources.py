"""Order sources: which message created or closed a work order, unique per message.

A work order (and a close) is keyed by where it came from: the channel, the user and the
channel's message id. The unique constraint makes a retried message find the order its first
attempt wrote instead of writing a second one.

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the id type as of this revision (SQLite needs "INTEGER PRIMARY KEY").
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "order_sources",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("order_id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_sources"),
        sa.UniqueConstraint(
            "channel", "user_id", "message_id", name="uq_order_sources_channel_user_message"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name="fk_order_sources_order_id_work_orders"
        ),
        sa.CheckConstraint("action IN ('create', 'close')", name="ck_order_sources_action"),
    )
    op.create_index("ix_order_sources_order_id", "order_sources", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_order_sources_order_id", table_name="order_sources")
    op.drop_table("order_sources")
