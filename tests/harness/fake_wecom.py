"""Pytest plugin: fake_wecom (filled in by its owner)."""
