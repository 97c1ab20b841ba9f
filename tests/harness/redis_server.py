"""Pytest plugin: redis_server (filled in by its owner)."""
