"""Outbox handlers that deliver: in-app notifications and WeCom app messages."""
