"""``snapreport dispatch check FILE``: a good file is summarised, a bad one names its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snapreport.cli import cli
from tests.unit.test_dispatch_rules import EXAMPLE

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("SNAPREPORT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_a_good_file_is_summarised(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    result = runner.invoke(cli, ["dispatch", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "team fire (消防安全组): claim" in result.output
    assert "rule 2: any type @ B区* → property" in result.output
    assert result.output.rstrip().endswith(": ok")


def test_a_bad_file_fails_with_its_line_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE.replace('team = "fire"', 'team = "nobody"'), encoding="utf-8")
    result = runner.invoke(cli, ["dispatch", "check", str(path)])
    assert result.exit_code == 1
    assert "line 16" in result.output
    assert "no team 'nobody'" in result.output
    assert "Traceback" not in result.output


def test_types_are_checked_against_the_configured_catalog(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    env = {"SNAPREPORT_ALARM_TYPES": '["漏水"]'}
    result = runner.invoke(cli, ["dispatch", "check", str(path)], env=env)
    assert result.exit_code == 1
    assert "not an alarm type of the catalog" in result.output


def test_docs_dispatch_shows_the_current_lifecycle_diagram() -> None:
    from snapreport.dispatch import diagram

    doc = Path(__file__).resolve().parents[2] / "docs" / "dispatch.md"
    text = doc.read_text(encoding="utf-8")
    assert diagram.BLOCK.render(text) == text, (
        "docs/dispatch.md is out of date with the lifecycle table; regenerate it with "
        f"`{diagram.BLOCK.command}`"
    )


def test_the_lifecycle_diagram_follows_the_table() -> None:
    from snapreport.dispatch.diagram import mermaid
    from snapreport.dispatch.lifecycle import TRANSITIONS, Transition

    drawn = mermaid(TRANSITIONS)
    assert "    open --> accepted: accept\n" in drawn
    assert "    closed --> open: reopen\n" in drawn
    assert "    accepted --> rejected: reject\n" in drawn
    only = mermaid((Transition("accept", ("open",), "accepted", "accepted"),))
    assert "    open --> accepted: accept\n" in only
    assert "--> closed" not in only


def test_the_diagram_command(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["dispatch", "diagram"])
    assert result.exit_code == 0
    assert result.output.startswith("stateDiagram-v2")
    doc = tmp_path / "d.md"
    doc.write_text("a\n<!-- lifecycle:start -->\nold\n<!-- lifecycle:end -->\nb\n", "utf-8")
    from snapreport.dispatch.diagram import BLOCK

    assert BLOCK.main(["--write", "--doc", str(doc)]) == 0
    assert "open --> accepted" in doc.read_text(encoding="utf-8")
