"""Alembic revision scripts of the orders schema, applied in order by ``upgrade_to_head``."""
