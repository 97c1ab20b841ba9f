"""docs/configuration.md names every setting of ``Settings`` with its default."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from snapreport.config import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _settings() -> list[tuple[str, FieldInfo]]:
    found: list[tuple[str, FieldInfo]] = []
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            for inner, inner_field in kind.model_fields.items():
                found.append((f"SNAPREPORT_{name.upper()}__{inner.upper()}", inner_field))
        else:
            found.append((f"SNAPREPORT_{name.upper()}", field))
    return found


def _shown(default: object) -> set[str]:
    """The ways the page may write ``default`` in its Default column."""
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, Enum):
        default = default.value
    if isinstance(default, bool):
        return {f"`{str(default).lower()}`"}
    if isinstance(default, float):
        return {f"`{default:g}`", f"`{default}`"}
    if isinstance(default, list | tuple):
        return {f"`{json.dumps(list(default), ensure_ascii=False, separators=(',', ':'))}`"}
    if default in ("", None):
        return {"`` (empty)"}
    return {f"`{default}`"}


def _rows() -> dict[str, str]:
    rows = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`SNAPREPORT_"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


SETTINGS = _settings()


def test_the_page_lists_nothing_that_does_not_exist() -> None:
    assert set(_rows()) <= {name for name, _ in SETTINGS}


@pytest.mark.parametrize(("name", "field"), SETTINGS, ids=[name for name, _ in SETTINGS])
def test_every_setting_is_documented_with_its_default(name: str, field: FieldInfo) -> None:
    rows = _rows()
    assert name in rows, f"{name} is missing from {PAGE.name}"
    default = field.get_default(call_default_factory=True)
    assert rows[name] in _shown(default), f"{name}: the page says {rows[name]}, not {default!r}"
