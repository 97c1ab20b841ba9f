"""Console indexes: keyset pages per filter, the figures' date range, text search.

Every list is newest first by ``id`` (the keyset cursor), so the filters' indexes end in
``id``: (status, id), (reporter, id), (assignee, id) replace the (…, created_at) ones, which
nothing ordered by; (alarm_type, id) on alarms serves the type filter. (created_at, id)
serves ``from``/``to`` and the figures' ranges, (closed_at, created_at) the daily backlog; on
PostgreSQL both carry (INCLUDE) the columns the figures read, so those are index-only scans.
On PostgreSQL, ``q`` (a substring of location, description or number, lower-cased) is found
through trigram GIN indexes when the ``pg_trgm`` extension can be created or is there;
without it (not installed, or no right to create it) the migration leaves them out and text
search scans, with the same results. SQLite gets the b-tree indexes only.

The indexes are built in the migration's transaction (not ``CONCURRENTLY``): on 1,000,000
orders this takes a minute or two, during which writes to the orders wait
(docs/benchmarks-console.md has the measured time).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

_REPLACED = {
    "ix_work_orders_status_created": ("ix_work_orders_status_id", "status"),
    "ix_work_orders_reporter_created": ("ix_work_orders_reporter_id", "reporter"),
    "ix_work_orders_assignee_created": ("ix_work_orders_assignee_id", "assignee"),
}
# Frozen copies of orders.tables.FIGURES_COLUMNS and SEARCH_INDEXES as of this revision.
_FIGURES_COLUMNS = (
    "status",
    "team",
    "alarm_id",
    "accepted_at",
    "closed_at",
    "due_accept_at",
    "due_resolve_at",
)
_SEARCH = {
    "ix_alarms_location_trgm": ("alarms", "location"),
    "ix_alarms_description_trgm": ("alarms", "description"),
    "ix_work_orders_number_trgm": ("work_orders", "number"),
}


def _trigrams_available() -> bool:
    """Create ``pg_trgm`` if it is missing and we may; whether it is there now."""
    bind = op.get_bind()
    installed = "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"
    if bind.exec_driver_sql(installed).first() is not None:
        return True
    available = "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
    if bind.exec_driver_sql(available).first() is None:
        return False
    try:
        with bind.begin_nested():  # a refusal must not abort the migration's transaction
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError:
        return False
    return True


def upgrade() -> None:
    for old, (new, column) in _REPLACED.items():
        op.drop_index(old, table_name="work_orders")
        op.create_index(new, "work_orders", [column, "id"])
    op.create_index(
        "ix_work_orders_created_at_id",
        "work_orders",
        ["created_at", "id"],
        postgresql_include=list(_FIGURES_COLUMNS),
    )
    op.create_index(
        "ix_work_orders_closed_at_created_at",
        "work_orders",
        ["closed_at", "created_at"],
        postgresql_include=["status"],
    )
    op.create_index("ix_alarms_alarm_type_id", "alarms", ["alarm_type", "id"])
    if op.get_bind().dialect.name == "postgresql" and _trigrams_available():
        for name, (table, column) in _SEARCH.items():
            op.execute(f"CREATE INDEX {name} ON {table} USING gin (lower({column}) gin_trgm_ops)")


def downgrade() -> None:
    for name in _SEARCH:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_alarms_alarm_type_id", table_name="alarms")
    op.drop_index("ix_work_orders_closed_at_created_at", table_name="work_orders")
    op.drop_index("ix_work_orders_created_at_id", table_name="work_orders")
    for old, (new, column) in _REPLACED.items():
        op.drop_index(new, table_name="work_orders")
        op.create_index(old, "work_orders", [column, "created_at"])
