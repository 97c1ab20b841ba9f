"""Pytest plugin: fake_vlm (filled in by its owner)."""
