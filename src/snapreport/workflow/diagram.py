"""The state diagram (Mermaid ``stateDiagram-v2``), drawn from the transition table.

``docs/dialogue.md`` shows it between ``<!-- diagram:start -->`` and ``<!-- diagram:end -->``;
``python -m snapreport.workflow.diagram --write`` (or ``snapreport diagram --write``) rewrites
that block, and a test fails when it is out of date.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from snapreport.diagram_block import DiagramBlock
from snapreport.session.model import STATES, State
from snapreport.workflow.states import (
    TRANSITIONS,
    Transition,
    resolve_target,
    sources,
)
from snapreport.workflow.triggers import Trigger

# what a reader recognises; Mermaid labels must avoid ":" and ";"
TRIGGER_LABELS: Final[dict[Trigger, str]] = {
    "expired": "expired (TTL)",
    "cancel": "cancel",
    "help": "help",
    "my_orders": "my orders",
    "login": "login",
    "image": "photo",
    "location": "location event",
    "text": "other text",
    "close": "close [N]",
    "choice": "choice",
    "type_choice": "type N or name",
    "language": "中文 or English",
    "yes": "yes",
    "no": "no",
    "set_type": "type X",
    "set_location": "location X",
    "force_close": "force close",
    "my_tasks": "my tasks",
    "accept": "accept N",
    "transfer": "transfer N to",
    "reject": "reject N reason",
    "reopen": "reopen N",
    "add_photo": "add photo",
    "merge": "add to order",
    "file_anyway": "file anyway",
}


def mermaid(rows: Iterable[Transition] = TRANSITIONS) -> str:
    """The table as a Mermaid ``stateDiagram-v2``. Rows between the same two states are
    merged into one edge, their triggers listed in table order."""
    edges: dict[tuple[State, State], list[str]] = {}
    for row in rows:
        for source in sources(row.source):
            labels = edges.setdefault((source, resolve_target(row.target, source)), [])
            label = TRIGGER_LABELS[row.trigger]
            if label not in labels:
                labels.append(label)
    # moves between states first (the flows), then what keeps a state where it is
    ordered = sorted(edges.items(), key=lambda e: (e[0][0] == e[0][1], STATES.index(e[0][0])))
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    lines += [
        f"    {source} --> {target}: {', '.join(labels)}" for (source, target), labels in ordered
    ]
    return "\n".join(lines) + "\n"


BLOCK: Final = DiagramBlock(
    "diagram", mermaid, Path("docs/dialogue.md"), "snapreport.workflow.diagram"
)

if __name__ == "__main__":
    raise SystemExit(BLOCK.main())
