"""The order lifecycle diagram (Mermaid ``stateDiagram-v2``), drawn from ``TRANSITIONS``.

``docs/dispatch.md`` shows it between ``<!-- lifecycle:start -->`` and
``<!-- lifecycle:end -->``; ``python -m snapreport.dispatch.diagram --write`` (or
``snapreport dispatch diagram --write``) rewrites that block, and a test fails when it is out
of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from snapreport.dispatch.lifecycle import TRANSITIONS, Transition
from snapreport.orders.base import ORDER_STATUSES, OrderStatus

START_MARKER: Final = "<!-- lifecycle:start -->"
END_MARKER: Final = "<!-- lifecycle:end -->"
REGENERATE_COMMAND: Final = "python -m snapreport.dispatch.diagram --write"
DEFAULT_DOC: Final = Path("docs/dispatch.md")
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


def render_doc(text: str) -> str:
    """``text`` with its lifecycle block replaced by the current diagram."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {START_MARKER} ... {END_MARKER} block")
    block = f"{START_MARKER}\n```mermaid\n{mermaid()}```\n{END_MARKER}"
    return text[:start] + block + text[end + len(END_MARKER) :]


def write_doc(path: Path = DEFAULT_DOC) -> bool:
    """Rewrite the lifecycle block of ``path``; True if it changed."""
    old = path.read_text(encoding="utf-8")
    new = render_doc(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snapreport.dispatch.diagram", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--write", action="store_true", help="rewrite the document's block")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the document to rewrite")
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write(mermaid())
        return 0
    changed = write_doc(args.doc)
    sys.stdout.write(f"{args.doc}: {'updated' if changed else 'already current'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
