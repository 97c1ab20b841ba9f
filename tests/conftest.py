"""Shared pytest configuration: the harness plugins and the fixtures every layer uses."""

from __future__ import annotations

pytest_plugins = [
    "tests.harness.clock",
    "tests.harness.redis_server",
    "tests.harness.postgres_server",
    "tests.harness.moto_s3",
    "tests.harness.fake_vlm",
    "tests.harness.fake_wecom",
    "tests.harness.outbox_kit",
]
