"""A Mermaid diagram kept current inside a Markdown document, between two HTML comments.

Each diagram module (the dialogue's states, the orders' lifecycle) draws its diagram from its
table and describes its block once, as a ``DiagramBlock``: the block renders the fenced diagram,
rewrites it in a document, and is the module's command line (print the diagram, or ``--write``
the document). A test per diagram fails when its document is out of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DiagramBlock:
    """The diagram ``draw`` makes, shown in ``doc`` between ``<!-- name:start -->`` and
    ``<!-- name:end -->``; ``module`` is the one that rewrites it (``python -m module --write``)."""

    name: str
    draw: Callable[[], str]
    doc: Path
    module: str

    @property
    def start(self) -> str:
        return f"<!-- {self.name}:start -->"

    @property
    def end(self) -> str:
        return f"<!-- {self.name}:end -->"

    @property
    def command(self) -> str:
        """What a reader runs to bring the document up to date."""
        return f"python -m {self.module} --write"

    def block(self) -> str:
        """The fenced diagram with its markers, as it stands in the document."""
        return f"{self.start}\n```mermaid\n{self.draw()}```\n{self.end}"

    def render(self, text: str) -> str:
        """``text`` with its block replaced by the current diagram."""
        start = text.find(self.start)
        end = text.find(self.end)
        if start < 0 or end < start:
            raise ValueError(f"the document has no {self.start} ... {self.end} block")
        return text[:start] + self.block() + text[end + len(self.end) :]

    def write(self, path: Path | None = None) -> bool:
        """Rewrite the block of ``path`` (default: ``doc``); True if it changed."""
        path = path or self.doc
        old = path.read_text(encoding="utf-8")
        new = self.render(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
        return new != old

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The command line: print the diagram, or ``--write`` it into the document."""
        parser = argparse.ArgumentParser(
            prog=f"python -m {self.module}",
            description=f"Print or rewrite the {self.name} diagram.",
        )
        parser.add_argument("--write", action="store_true", help="rewrite the document's block")
        parser.add_argument("--doc", type=Path, default=self.doc, help="the document to rewrite")
        args = parser.parse_args(argv)
        if not args.write:
            sys.stdout.write(self.draw())
            return 0
        changed = self.write(args.doc)
        sys.stdout.write(f"{args.doc}: {'updated' if changed else 'already current'}\n")
        return 0
