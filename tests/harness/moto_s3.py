"""Pytest plugin: moto_s3 (filled in by its owner)."""
