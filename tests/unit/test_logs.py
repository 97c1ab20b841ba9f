"""Loggers made at import time follow every ``configure_logging``, and write one JSON line per
event, without secrets."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapreport.logs import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _back_to_stdout() -> Iterator[None]:
    yield
    configure_logging("INFO")


def test_a_logger_made_before_configuring_writes_where_the_latest_configuration_says() -> None:
    log = get_logger("snapreport.test")
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", json=True, stream=first)
    log.info("one", n=1)
    configure_logging("INFO", json=True, stream=second)
    log.info("two", n=2)
    log.debug("hidden")  # below the level
    configure_logging("WARNING", json=True, stream=second)
    log.info("hidden too")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    lines = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [(line["event"], line["n"], line["level"]) for line in lines] == [("two", 2, "info")]


def test_a_line_carries_no_token_and_no_image_bytes() -> None:
    log = get_logger("snapreport.test")
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    log.info("sent", api_token="s3cret", image=b"\x89PNG" * 100, user_id="alice")
    line = json.loads(out.getvalue())
    assert line["api_token"] == "[redacted]"
    assert line["image"] == "<400 bytes>"
    assert line["user_id"] == "alice"
    assert "s3cret" not in out.getvalue()


def test_every_module_logs_through_get_logger() -> None:
    """One logging style: structlog key=value events from ``get_logger``, nowhere else."""
    src = Path(__file__).resolve().parents[2] / "src" / "snapreport"
    offenders = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if path.name != "logs.py" and "logging.getLogger(" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
