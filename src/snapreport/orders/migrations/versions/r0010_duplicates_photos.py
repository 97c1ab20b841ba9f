"""Duplicate reports and several photos per report.

- ``alarms.location_key``: the location folded for comparison, with the indexes the
  duplicate search uses (same type and same folded location; same type and a latitude range).
  Alarms filed before this revision have none and are found by their coordinates only.
- ``alarm_photos``: the photos of an alarm after the first (``alarms.image_key``).
- ``order_sources.action`` may be ``merge``: a report merged into an existing order is keyed by
  its message like a create, so a retried message merges once.

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the id type as of this revision (SQLite needs "INTEGER PRIMARY KEY").
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ACTIONS_BEFORE = "action IN ('create', 'close')"
_ACTIONS = "action IN ('create', 'close', 'merge')"


def upgrade() -> None:
    op.add_column("alarms", sa.Column("location_key", sa.String(200), nullable=True))
    op.create_index("ix_alarms_type_location_key", "alarms", ["alarm_type", "location_key"])
    op.create_index("ix_alarms_type_latitude", "alarms", ["alarm_type", "latitude"])
    op.create_table(
        "alarm_photos",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alarm_id", _ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_key", sa.String(512), nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_photos"),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name="fk_alarm_photos_alarm_id_alarms"
        ),
        sa.UniqueConstraint("alarm_id", "position", name="uq_alarm_photos_alarm_position"),
    )
    op.create_index("ix_alarm_photos_image_key", "alarm_photos", ["image_key"])
    # SQLite cannot alter a CHECK constraint: batch mode copies the table there
    with op.batch_alter_table("order_sources") as batch:
        # 0007 passed the full name, which the naming convention prefixed once more
        batch.drop_constraint("ck_order_sources_action", type_="check")
        batch.create_check_constraint("action", sa.text(_ACTIONS))


def downgrade() -> None:
    op.execute("DELETE FROM order_sources WHERE action = 'merge'")
    with op.batch_alter_table("order_sources") as batch:
        batch.drop_constraint(op.f("ck_order_sources_action"), type_="check")
        batch.create_check_constraint("action", sa.text(_ACTIONS_BEFORE))
    op.drop_index("ix_alarm_photos_image_key", table_name="alarm_photos")
    op.drop_table("alarm_photos")
    op.drop_index("ix_alarms_type_latitude", table_name="alarms")
    op.drop_index("ix_alarms_type_location_key", table_name="alarms")
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("location_key")
