"""The order lifecycle diagram (Mermaid ``stateDiagram-v2``), drawn from ``TRANSITIONS``.

``docs/dispatch.md`` shows it between ``<!-- lifecycle:start -->`` and
``<!-- lifecycle:end -->``; ``python -m snapreport.dispatch.diagram --write`` (or
``snapreport dispatch diagram --write``) rewrites that block, and a test fails when it is out
of date.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from snapreport.diagram_block import DiagramBlock
from snapreport.dispatch.lifecycle import TRANSITIONS, Transition
from snapreport.orders.base import ORDER_STATUSES, OrderStatus

# the escalations: not a change of status, but part of the lifecycle a reader should see
ESCALATIONS: Final[tuple[tuple[OrderStatus, str], ...]] = (
    ("open", "escalate 1 (not accepted by due_accept_at)"),
    ("open", "escalate 2 (not closed by due_resolve_at)"),
    ("accepted", "escalate 2 (not closed by due_resolve_at)"),
)


def mermaid(rows: Iterable[Transition] = TRANSITIONS) -> str:
    """The lifecycle table as a Mermaid ``stateDiagram-v2``; rows between the same two
    statuses are merged into one edge, their actions listed in table order."""
    edges: dict[tuple[OrderStatus, OrderStatus], list[str]] = {}
    for row in rows:
        for source in row.sources:
            target = row.target or source
            labels = edges.setdefault((source, target), [])
            if row.action not in labels:
                labels.append(row.action)
    for status, label in ESCALATIONS:
        edges.setdefault((status, status), []).append(label)
    ordered = sorted(
        edges.items(), key=lambda e: (e[0][0] == e[0][1], ORDER_STATUSES.index(e[0][0]))
    )
    lines = ["stateDiagram-v2", "    [*] --> open: filed (routed)"]
    lines += [
        f"    {source} --> {target}: {', '.join(labels)}" for (source, target), labels in ordered
    ]
    return "\n".join(lines) + "\n"


BLOCK: Final = DiagramBlock(
    "lifecycle", mermaid, Path("docs/dispatch.md"), "snapreport.dispatch.diagram"
)

if __name__ == "__main__":
    raise SystemExit(BLOCK.main())
