"""Durable side effects: rows committed with the change they announce, delivered by workers."""
