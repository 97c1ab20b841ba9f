"""Alembic environment: runs on the connection ``upgrade_to_head`` hands over.

There is no ini file and no engine here; see ``snapreport.orders.migrations``.
"""

from __future__ import annotations

from alembic import context

import snapreport.outbox.tables
import snapreport.webhooks.tables  # noqa: F401  (registers the webhook tables on Base.metadata)
from snapreport.orders.tables import Base

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "orders migrations run from snapreport.orders.migrations.upgrade_to_head(connection)"
    )
context.configure(
    connection=_connection,
    target_metadata=Base.metadata,
    version_table=context.config.attributes["version_table"],
    # One transaction for all revisions, owned by the caller (DDL is transactional on both
    # SQLite and PostgreSQL, so a failed upgrade leaves nothing half-done).
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
