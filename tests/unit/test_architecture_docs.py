"""docs/architecture.md lists every module and package under src/snapreport, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "snapreport"
PAGE = ROOT / "docs" / "architecture.md"
ROOT_LINE = "src/snapreport/"
# one line of the tree: two spaces per level, then a module (x.py) or a directory (x/)
_ENTRY = re.compile(r"^(?P<indent>(?:  )+)(?P<name>[A-Za-z0-9_]+(?:\.py|/))(?:\s|$)")


def layout_block(text: str) -> list[str]:
    """The lines of the first code block of the Layout section."""
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1].splitlines()


def listed(lines: list[str]) -> set[str]:
    """The paths (relative to src/snapreport) the tree names; directories end with '/'."""
    found: set[str] = set()
    stack: list[str] = []
    inside = False
    for line in lines:
        if line.strip() == ROOT_LINE:
            inside = True
            continue
        entry = _ENTRY.match(line) if inside else None
        if entry is None:
            inside = inside and line.startswith("  ")
            continue
        depth = len(entry["indent"]) // 2 - 1
        name = entry["name"]
        del stack[depth:]
        found.add("".join(stack) + name)
        if name.endswith("/"):
            stack.append(name)
    return found


def present() -> set[str]:
    """Every module (but ``__init__.py`` and migration revisions) and every directory that
    holds Python code, relative to src/snapreport."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if "__pycache__" in relative.parts:
            continue
        for parent in list(relative.parents)[:-1]:
            found.add(f"{parent.as_posix()}/")
        if path.name != "__init__.py" and relative.parent.name != "versions":
            found.add(relative.as_posix())
    return found


def test_every_module_and_package_is_described() -> None:
    shown = listed(layout_block(PAGE.read_text(encoding="utf-8")))
    missing = sorted(present() - shown)
    assert not missing, f"docs/architecture.md's layout does not list: {missing}"


def test_every_line_names_something_that_exists() -> None:
    shown = listed(layout_block(PAGE.read_text(encoding="utf-8")))
    stale = sorted(name for name in shown if not (PACKAGE / name).exists())
    assert not stale, f"docs/architecture.md's layout lists what is not there: {stale}"


def test_the_tree_is_read_by_indentation() -> None:
    lines = [
        ROOT_LINE,
        "  app.py      what it holds",
        "  a/          a package",
        "    b.py      in it",
        "    c/",
        "      d.py",
        "  e.py",
        "tests/  elsewhere",
    ]
    assert listed(lines) == {"app.py", "a/", "a/b.py", "a/c/", "a/c/d.py", "e.py"}
