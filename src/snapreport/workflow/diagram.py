"""The state diagram (Mermaid ``stateDiagram-v2``), drawn from the transition table.

``docs/dialogue.md`` shows it between ``<!-- diagram:start -->`` and ``<!-- diagram:end -->``;
``python -m snapreport.workflow.diagram --write`` (or ``snapreport diagram --write``) rewrites
that block, and a test fails when it is out of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from snapreport.session.model import STATES, State
from snapreport.workflow.states import (
    TRANSITIONS,
    Transition,
    resolve_target,
    sources,
)
from snapreport.workflow.triggers import Trigger

START_MARKER: Final = "<!-- diagram:start -->"
END_MARKER: Final = "<!-- diagram:end -->"
REGENERATE_COMMAND: Final = "python -m snapreport.workflow.diagram --write"
DEFAULT_DOC: Final = Path("docs/dialogue.md")

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


def markdown_block() -> str:
    """The fenced diagram as it stands between the markers."""
    return f"{START_MARKER}\n```mermaid\n{mermaid()}```\n{END_MARKER}"


def render_doc(text: str) -> str:
    """``text`` with its diagram block replaced by the current one."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {START_MARKER} ... {END_MARKER} block")
    return text[:start] + markdown_block() + text[end + len(END_MARKER) :]


def write_doc(path: Path = DEFAULT_DOC) -> bool:
    """Rewrite the diagram block of ``path``; True if it changed."""
    old = path.read_text(encoding="utf-8")
    new = render_doc(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snapreport.workflow.diagram", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--write", action="store_true", help="rewrite the diagram block of the document"
    )
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
