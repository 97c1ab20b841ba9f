"""The state diagram is drawn from the table, and docs/dialogue.md shows the current one."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapreport.session.model import STATES
from snapreport.workflow import diagram
from snapreport.workflow.handlers.report import start_report
from snapreport.workflow.states import TRANSITIONS, Transition

DOC = Path(__file__).resolve().parents[2] / "docs" / "dialogue.md"


def test_docs_dialogue_shows_the_current_diagram() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert diagram.BLOCK.render(text) == text, (
        "docs/dialogue.md is out of date with the transition table; regenerate it with "
        f"`{diagram.BLOCK.command}`"
    )


def test_every_state_and_every_move_is_drawn() -> None:
    drawn = diagram.mermaid()
    assert drawn.startswith("stateDiagram-v2\n    [*] --> idle\n")
    for state in STATES:
        assert f"    {state} --> " in drawn
    assert "    idle --> waiting_location: photo\n" in drawn
    assert (
        "    waiting_confirm --> idle: cancel, yes, add to order, file anyway, no, expired (TTL)\n"
        in drawn
    )


def test_the_diagram_follows_the_table() -> None:
    rows = (Transition("idle", "image", "waiting_location", start_report),)
    assert diagram.mermaid(rows) == (
        "stateDiagram-v2\n    [*] --> idle\n    idle --> waiting_location: photo\n"
    )
    assert diagram.mermaid(TRANSITIONS) == diagram.mermaid()


def test_write_replaces_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "dialogue.md"
    doc.write_text(
        f"# Title\n\n{diagram.BLOCK.start}\nstale\n{diagram.BLOCK.end}\n\nafter\n",
        encoding="utf-8",
    )
    assert diagram.BLOCK.main(["--write", "--doc", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n<!-- diagram:start -->\n```mermaid\nstateDiagram-v2\n")
    assert text.endswith("```\n<!-- diagram:end -->\n\nafter\n")
    assert "stale" not in text
    assert diagram.BLOCK.write(doc) is False  # already current


def test_a_document_without_markers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="diagram:start"):
        diagram.BLOCK.render("# nothing here\n")


def test_printing_the_diagram(capsys: pytest.CaptureFixture[str]) -> None:
    assert diagram.BLOCK.main([]) == 0
    assert capsys.readouterr().out == diagram.mermaid()
