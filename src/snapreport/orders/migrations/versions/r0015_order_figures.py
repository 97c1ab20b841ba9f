"""Figures without the alarms: each order keeps its alarm's type and location.

- ``work_orders.alarm_type`` and ``work_orders.location``: copies of the order's alarm's (an
  alarm never changes once written; the application writes both with the order). The orders
  there are get theirs here, in batches of ``BATCH`` ids (one ``UPDATE ... FROM alarms`` each,
  so no statement holds a year of orders at once). The columns are added ``NOT NULL DEFAULT
  ''`` (no table rewrite on PostgreSQL); PostgreSQL then drops the default, SQLite keeps it
  (dropping it there copies the table; the application always writes both columns).
- ``ix_work_orders_created_at_id`` carries them (``INCLUDE`` on PostgreSQL) instead of
  ``alarm_id``, so the figures by type and by location are index-only range scans instead of a
  join of up to a year of alarms.
- ``ix_work_orders_team_created_at`` (team, created_at) and
  ``ix_work_orders_alarm_type_created_at`` (alarm_type, created_at), carrying the same
  columns: one team's (a lead's or member's, or each team's in a grouping by team) or one
  type's orders of a range without reading the table, in the order of the groups.

On 1,000,000 orders the upgrade takes about a minute (docs/console.md has the measured time);
writes to the orders wait meanwhile.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 50_000
# Frozen copies of orders.tables.FIGURES_COLUMNS before and as of this revision.
_FIGURES_BEFORE = (
    "status",
    "team",
    "alarm_id",
    "accepted_at",
    "closed_at",
    "due_accept_at",
    "due_resolve_at",
)
_FIGURES = (
    "status",
    "team",
    "alarm_type",
    "location",
    "accepted_at",
    "closed_at",
    "due_accept_at",
    "due_resolve_at",
)
_GROUPS = ("team", "alarm_type")
_COPY = """
UPDATE work_orders SET alarm_type = alarms.alarm_type, location = alarms.location
FROM alarms WHERE alarms.id = work_orders.alarm_id AND work_orders.id >= :low
AND work_orders.id < :high
"""


def _by_creation(figures: tuple[str, ...]) -> None:
    op.create_index(
        "ix_work_orders_created_at_id",
        "work_orders",
        ["created_at", "id"],
        postgresql_include=list(figures),
    )


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    # rebuilt once below rather than updated row by row by the copy
    op.drop_index("ix_work_orders_created_at_id", table_name="work_orders")
    for name, type_ in (("alarm_type", sa.String(64)), ("location", sa.Text())):
        op.add_column("work_orders", sa.Column(name, type_, nullable=False, server_default=""))
    low, high = bind.execute(sa.text("SELECT min(id), max(id) FROM work_orders")).one()
    if low is not None:
        for start in range(low, high + 1, BATCH):
            bind.execute(sa.text(_COPY), {"low": start, "high": start + BATCH})
    if postgres:
        for column in ("alarm_type", "location"):
            op.alter_column("work_orders", column, server_default=None)
    _by_creation(_FIGURES)
    for column in _GROUPS:
        op.create_index(
            f"ix_work_orders_{column}_created_at",
            "work_orders",
            [column, "created_at"],
            postgresql_include=[c for c in _FIGURES if c != column],
        )


def downgrade() -> None:
    for column in _GROUPS:
        op.drop_index(f"ix_work_orders_{column}_created_at", table_name="work_orders")
    op.drop_index("ix_work_orders_created_at_id", table_name="work_orders")
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_column("location")
        batch.drop_column("alarm_type")
    _by_creation(_FIGURES_BEFORE)
