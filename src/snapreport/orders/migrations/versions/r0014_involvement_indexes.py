"""Involvement indexes: (reporter, id) and (assignee, id) carry the team and the status.

A list limited to the orders a user is involved in (``user_id``, or a member filtering
another team's orders) reads the newest of each way of being involved by a backward scan of
the reporter and assignee indexes. With the team and the status in the index (``INCLUDE``,
PostgreSQL), those filters are checked there, an index-only scan, instead of fetching every
order of a busy reporter from the table. SQLite keeps the plain indexes.

The two indexes are rebuilt in the migration's transaction: on 1,000,000 orders about a
second each, during which writes to the orders wait.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = {"ix_work_orders_reporter_id": "reporter", "ix_work_orders_assignee_id": "assignee"}
_INCLUDED = ["team", "status"]  # frozen copy of orders.tables.INVOLVEMENT_COLUMNS


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in _COLUMNS.items():
        op.drop_index(name, table_name="work_orders")
        op.create_index(name, "work_orders", [column, "id"], postgresql_include=_INCLUDED)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in _COLUMNS.items():
        op.drop_index(name, table_name="work_orders")
        op.create_index(name, "work_orders", [column, "id"])
