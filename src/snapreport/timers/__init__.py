"""Expiry timers: a port (``base.py``) and its adapters (memory, SQLite, Redis)."""
