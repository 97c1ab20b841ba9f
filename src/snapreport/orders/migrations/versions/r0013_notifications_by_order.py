"""Notifications: an index by order, for an order's notifications in the console.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_notifications_order_number_id", "notifications", ["order_number", "id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_order_number_id", table_name="notifications")
