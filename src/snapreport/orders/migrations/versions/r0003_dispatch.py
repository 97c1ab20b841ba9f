"""Dispatch: teams, acceptance, deadlines, escalation, coordinates, rejection, merged reporters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the id type as of this revision (SQLite needs "INTEGER PRIMARY KEY").
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD_STATUSES = "status IN ('open', 'closed')"
_NEW_STATUSES = "status IN ('open', 'accepted', 'closed', 'rejected')"


def upgrade() -> None:
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("longitude", sa.Float(), nullable=True))
    # SQLite cannot alter a CHECK constraint: batch mode copies the table there
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("team", sa.String(64), nullable=True))
        batch.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("due_accept_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("due_resolve_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("escalation", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reject_reason", sa.Text(), nullable=True))
        # 0001 passed the full name, which the naming convention prefixed once more
        batch.drop_constraint("ck_work_orders_status", type_="check")
        batch.create_check_constraint("status", sa.text(_NEW_STATUSES))
        batch.create_check_constraint("escalation", sa.text("escalation BETWEEN 0 AND 2"))
        batch.create_index("ix_work_orders_team_id", ["team", "id"])
    with op.batch_alter_table("work_orders") as batch:
        batch.alter_column("escalation", server_default=None)
    op.create_table(
        "order_also_reported",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("order_id", _ID, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_also_reported"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name="fk_order_also_reported_order_id_work_orders"
        ),
    )
    op.create_index("ix_order_also_reported_order_id", "order_also_reported", ["order_id"])
    op.create_index(
        "ix_order_also_reported_user_id",
        "order_also_reported",
        ["user_id", "order_id"],
        unique=True,
    )
    op.create_table(
        "team_turns",
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team", name="pk_team_turns"),
    )


def downgrade() -> None:
    op.drop_table("team_turns")
    op.drop_index("ix_order_also_reported_user_id", table_name="order_also_reported")
    op.drop_index("ix_order_also_reported_order_id", table_name="order_also_reported")
    op.drop_table("order_also_reported")
    # orders that are neither open nor closed cannot be kept by the old schema
    op.execute("UPDATE work_orders SET status = 'open' WHERE status = 'accepted'")
    op.execute("UPDATE work_orders SET status = 'closed' WHERE status = 'rejected'")
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_index("ix_work_orders_team_id")
        batch.drop_constraint(op.f("ck_work_orders_escalation"), type_="check")
        batch.drop_constraint(op.f("ck_work_orders_status"), type_="check")
        batch.create_check_constraint("status", sa.text(_OLD_STATUSES))
        for column in (
            "reject_reason",
            "escalation",
            "due_resolve_at",
            "due_accept_at",
            "accepted_at",
            "team",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("longitude")
        batch.drop_column("latitude")
